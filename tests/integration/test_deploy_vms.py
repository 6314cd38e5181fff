"""deploy/: the install tree, the systemd units, the example configs, and the
Ansible playbooks driving a cluster on simulated VMs.

The VMs are network namespaces this test makes (tests/support/cluster.py Netns:
one namespace per host on a bridge in a namespace of its own, 10.213.S.0/24
with a free S, and a veth back to the test's namespace so its clients reach
them; no other address is used). Each runs sshd on its own address with a
host key, an authorized key and a config made in a temporary directory (the
machine's /etc/ssh and ~/.ssh are not touched; /run/sshd, sshd's privilege
separation directory, is made if missing, as the package does at boot). Each
host has its own prefix there for binaries, configs, data, PID files and logs.
Ansible runs here, with HOME and its temporary directories in the temporary
directory too, and reaches the hosts over ssh.

systemd cannot be PID 1 in these namespaces, so the role runs in its documented
process mode (weir_service_manager=process: start-stop-daemon, PID files); and
the "VMs" share this machine's /etc/passwd, so the role does not create the
weir account here (weir_manage_user=false, the services run as root). The
systemd units are checked separately with systemd-analyze verify.

Cleanup, also on failure: every process in each namespace by PID (`ip netns
pids`: sshd, the servers the playbooks started, any ssh session), then the
namespaces and links, then the temporary directory.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import cluster as weir_cluster  # noqa: E402
import deps  # noqa: E402

ROOT = weir_cluster.ROOT
DEPLOY = os.path.join(ROOT, "deploy")
ANSIBLE_DIR = os.path.join(DEPLOY, "ansible")
INSTALL_HINT = "run deploy/install-deps.sh (ansible, openssh-server, systemd)"

# The whole module is about deployment: tests/run.sh deselects it ("vms") for
# the sanitizer build.
pytestmark = pytest.mark.vms

TOPIC = "deploy-events"
PARTITIONS = 6


def run(argv, timeout, check=True, **kw):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(argv), r.returncode, r.stdout.decode(errors="replace")[-4000:],
            r.stderr.decode(errors="replace")[-4000:]))
    return r


def stage_install(dest):
    """meson install of the build tree under test into @dest; returns the prefix
    inside it (dest + prefix)."""
    run(["meson", "install", "-C", weir_cluster.build_dir(), "--destdir", dest,
         "--no-rebuild", "--quiet"], timeout=120)
    for top, _, files in os.walk(dest):
        if "weir-broker" in files and os.path.basename(top) == "bin":
            return os.path.dirname(top)
    raise AssertionError("meson install put no bin/weir-broker under %s" % dest)


# ---- the install tree, versions, systemd units ---------------------------------

def git_revision():
    """HEAD of the checkout, or None outside a git checkout."""
    r = run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"], timeout=10, check=False)
    return r.stdout.decode().strip() if r.returncode == 0 else None


def test_meson_install_tree_and_versions(tmp_path):
    """meson install puts the three binaries, the units, the example configs and
    the guide under the prefix; each binary prints the version and the revision."""
    prefix = stage_install(str(tmp_path))
    want = ["bin/weir", "bin/weir-broker", "bin/weir-coordinator",
            "lib/systemd/system/weir-coordinator.service",
            "lib/systemd/system/weir-broker.service", "lib/systemd/system/weir.target",
            "share/weir/examples/coordinator.properties",
            "share/weir/examples/broker.properties", "share/doc/weir/deploy.md"]
    missing = [w for w in want if not os.path.isfile(os.path.join(prefix, w))]
    assert not missing, "not installed: %s" % missing
    real_prefix = prefix[len(str(tmp_path)):]
    unit = open(os.path.join(prefix, "lib/systemd/system/weir-broker.service")).read()
    assert "ExecStart=%s/bin/weir-broker --config " % real_prefix in unit
    assert not re.search(r"@[A-Z]+@", unit), "an unsubstituted @VAR@ in the unit"
    rev = git_revision()
    for prog in ("weir", "weir-broker", "weir-coordinator"):
        out = run([os.path.join(prefix, "bin", prog), "--version"], timeout=10).stdout.decode()
        m = re.fullmatch(r"%s (\d+\.\d+\.\d+) \(git (\S+)\)\n" % prog, out)
        assert m, "%s --version printed %r" % (prog, out)
        # The build under test may be older than HEAD: the revision must be a
        # commit of this repository (or "unknown" outside a checkout).
        built = m.group(2)
        if rev:
            # git describe: a hash, or TAG-N-gHASH once there are tags
            h = re.fullmatch(r"(?:\S+-g)?([0-9a-f]{7,40})(-dirty)?", built)
            assert h, out
            known = run(["git", "-C", ROOT, "cat-file", "-e", h.group(1) + "^{commit}"],
                        timeout=10, check=False)
            assert known.returncode == 0, "%s: %s is no commit here" % (out, built)


def test_systemd_units_verify(tmp_path):
    """systemd-analyze verify accepts the installed units with no warning (run on
    the install tree as root, with the system's own units copied beside them, so
    ExecStart binaries and default dependencies resolve); their exposure score
    stays below 2.0 ("OK")."""
    deps.require(shutil.which("systemd-analyze") is not None, "systemd-analyze not found",
                 INSTALL_HINT)
    prefix = stage_install(str(tmp_path))
    shutil.copytree("/usr/lib/systemd/system", str(tmp_path / "usr/lib/systemd/system"),
                    symlinks=True)
    rel = prefix[len(str(tmp_path)):] + "/lib/systemd/system/"
    units = [rel + u for u in ("weir-coordinator.service", "weir-broker.service", "weir.target")]
    r = run(["systemd-analyze", "verify", "--root=%s" % tmp_path] + units, timeout=60,
            check=False)
    out = (r.stdout + r.stderr).decode(errors="replace").strip()
    assert r.returncode == 0 and out == "", "systemd-analyze verify:\n" + out
    for u in units[:2]:
        r = run(["systemd-analyze", "security", "--offline=true", "--root=%s" % tmp_path, u],
                timeout=60, check=False)
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout.decode())
        assert m and float(m.group(1)) < 2.0, r.stdout.decode()[-2000:]


RENDER_PLAYBOOK = """\
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    role_dir: {role}
    weir_systemd_src_dir: {units}
    weir_bindir: /usr/local/bin
    weir_confdir: /etc/weir-test
    weir_datadir: /srv/weir
    weir_user: weirsvc
    weir_group: weirsvc
  tasks:
    - name: Render the units as the role does in systemd mode (tasks/units.yml)
      ansible.builtin.template:
        src: "{{{{ role_dir }}}}/templates/unit.j2"
        dest: "{dest}/{{{{ item }}}}"
        mode: "0644"
      loop: [weir-coordinator.service, weir-broker.service, weir.target]
      vars:
        weir_unit_name: "{{{{ item }}}}"
    - name: The data directory drop-in
      ansible.builtin.template:
        src: "{{{{ role_dir }}}}/templates/datadir-dropin.conf.j2"
        dest: "{dest}/weir-broker.service.d/weir-datadir.conf"
        mode: "0644"
"""


def test_ansible_systemd_units_verify(tmp_path):
    """The units the role installs in systemd mode (deploy/systemd with the
    host's paths and account) pass systemd-analyze verify, with the drop-in
    that lets a non-default data directory be written."""
    for tool in ("ansible-playbook", "systemd-analyze"):
        deps.require(shutil.which(tool) is not None, "%s not found" % tool, INSTALL_HINT)
    root = tmp_path / "root"
    stage_install(str(root))
    shutil.copytree("/usr/lib/systemd/system", str(root / "usr/lib/systemd/system"),
                    symlinks=True)
    dest = root / "etc/systemd/system"
    (dest / "weir-broker.service.d").mkdir(parents=True)
    pb = tmp_path / "render.yml"
    pb.write_text(RENDER_PLAYBOOK.format(role=os.path.join(ANSIBLE_DIR, "roles", "weir"),
                                         units=os.path.join(DEPLOY, "systemd"), dest=dest))
    home = tmp_path / "home"
    env = dict(os.environ, HOME=str(home), ANSIBLE_HOME=str(home),
               ANSIBLE_LOCAL_TEMP=str(home / "tmp"), ANSIBLE_REMOTE_TEMP=str(home / "rtmp"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="False",
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    run(["ansible-playbook", "-i", "localhost,", str(pb)], timeout=120, env=env)
    broker = (dest / "weir-broker.service").read_text()
    assert "ExecStart=/usr/local/bin/weir-broker --config /etc/weir-test/broker.properties" \
        in broker
    assert "\nUser=weirsvc\n" in broker and "\nGroup=weirsvc\n" in broker
    assert "ReadWritePaths=/srv/weir" in (dest / "weir-broker.service.d/weir-datadir.conf") \
        .read_text()
    units = ["/etc/systemd/system/" + u
             for u in ("weir-coordinator.service", "weir-broker.service", "weir.target")]
    r = run(["systemd-analyze", "verify", "--root=%s" % root] + units, timeout=60, check=False)
    out = (r.stdout + r.stderr).decode(errors="replace").strip()
    assert r.returncode == 0 and out == "", "systemd-analyze verify:\n" + out


# ---- the example configs -------------------------------------------------------

def config_keys(path):
    """(key, value, comment lines above it) of every setting in a .properties file."""
    out, comment = [], []
    for line in open(path):
        s = line.strip()
        if s.startswith("#"):
            comment.append(s)
        elif not s:
            pass
        else:
            k, _, v = s.partition("=")
            out.append((k.strip(), v.strip(), list(comment)))
            comment = []
    return out


def documented_keys(section):
    doc = open(os.path.join(ROOT, "docs", "configuration.md")).read()
    part = doc.split("## " + section, 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"(?m)^\| `([^`]+)`", part))


def wait_line(proc, prefix, timeout):
    """The first stdout line of @proc starting with @prefix, within @timeout s."""
    deadline = time.monotonic() + timeout
    got = []

    def reader():
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            if line.startswith(prefix):
                got.append(line)
                return
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(max(0.0, deadline - time.monotonic()))
    return got[0] if got else None


def test_example_configs_are_real_and_commented(tmp_path):
    """Every key of deploy/config/*.properties is a registered key of its program
    (docs/configuration.md is generated from the registries) and has a comment;
    a coordinator and a broker started from the files (addresses and paths
    overridden for this machine) come up with no unknown-key warning."""
    coord = os.path.join(DEPLOY, "config", "coordinator.properties")
    broker = os.path.join(DEPLOY, "config", "broker.properties")
    for path, section in ((coord, "weir-coordinator"), (broker, "weir-broker")):
        known = documented_keys(section)
        for key, _, comment in config_keys(path):
            assert key in known, "%s: '%s' is not a %s key" % (path, key, section)
            assert comment, "%s: '%s' has no comment" % (path, key)
    cport, kport, rport = (weir_cluster.free_port() for _ in range(3))
    procs = []
    try:
        clog = open(tmp_path / "coordinator.log", "wb")
        procs.append(subprocess.Popen(
            [weir_cluster.binary("coordinator/weir-coordinator"), "--config", coord,
             "--format-if-empty", "--override", "listeners=127.0.0.1:%d" % cport,
             "--override", "data.dir=%s" % (tmp_path / "coord")],
            stdout=subprocess.PIPE, stderr=clog, stdin=subprocess.DEVNULL))
        assert wait_line(procs[0], "weir-coordinator ready", 20), "coordinator not ready"
        blog = open(tmp_path / "broker.log", "wb")
        procs.append(subprocess.Popen(
            [weir_cluster.binary("broker/weir-broker"), "--config", broker,
             "--override", "listeners=PLAINTEXT://127.0.0.1:%d" % kport,
             "--override", "advertised.listeners=PLAINTEXT://127.0.0.1:%d" % kport,
             "--override", "replication.listener=127.0.0.1:%d" % rport,
             "--override", "coordinator.connect=127.0.0.1:%d" % cport,
             "--override", "log.dirs=%s" % (tmp_path / "broker")],
            stdout=subprocess.PIPE, stderr=blog, stdin=subprocess.DEVNULL))
        assert wait_line(procs[1], "weir-broker ready", 20), "broker not ready"
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
    logs = (tmp_path / "coordinator.log").read_text() + (tmp_path / "broker.log").read_text()
    assert "unknown configuration key" not in logs, logs[-3000:]
    assert [p.returncode for p in procs] == [0, 0], logs[-3000:]


def test_docker_files_consistent():
    """The container files are never built here (no container engine): check
    what can be checked without one. Every --override key in compose.yaml is a
    real key of its program, every service names an example config the image
    installs, and the image installs the runtime libraries the Ansible role
    does."""
    try:
        import yaml
    except ImportError:
        deps.require(False, "python3-yaml not found", "apt-get install python3-yaml (ansible "
                     "brings it)")
    compose = yaml.safe_load(open(os.path.join(DEPLOY, "docker", "compose.yaml")))
    assert sorted(compose["services"]) == ["broker1", "broker2", "broker3", "coordinator"]
    for name, svc in compose["services"].items():
        argv = [str(a) for a in svc["command"]]
        section = argv[0]
        assert section in ("weir-coordinator", "weir-broker"), argv
        known = documented_keys(section)
        conf = argv[argv.index("--config") + 1]
        assert conf.startswith("/usr/local/share/weir/examples/"), conf
        assert os.path.exists(os.path.join(DEPLOY, "config", os.path.basename(conf))), conf
        for i, a in enumerate(argv):
            if a == "--override":
                key = argv[i + 1].split("=", 1)[0]
                assert key in known, "%s: --override %s is not a %s key" % (name, key, section)
    docker = open(os.path.join(DEPLOY, "docker", "Dockerfile")).read()
    role = yaml.safe_load(open(os.path.join(ANSIBLE_DIR, "roles", "weir", "defaults",
                                            "main.yml")))
    for pkg in role["weir_runtime_packages"]:
        assert re.search(r"\b%s\b" % re.escape(pkg), docker), "Dockerfile lacks %s" % pkg


# ---- simulated VMs ----------------------------------------------------------------

SSHD_CONFIG = """\
ListenAddress {addr}
Port 22
HostKey {host_key}
PidFile {dir}/sshd.pid
AuthorizedKeysFile {auth}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
UseDNS no
MaxStartups 100
MaxSessions 50
LogLevel ERROR
"""


class Vms:
    """Hosts vm1..vmN: a namespace, sshd and a prefix each. close() ends every
    process in the namespaces by PID and deletes everything made here."""

    def __init__(self, names, tmp):
        self.names = names
        self.tmp = tmp
        self.net = weir_cluster.Netns(names)
        self.sshd = {}

    def addr(self, name):
        return self.net.addr(name)

    def hostdir(self, name):
        return os.path.join(self.tmp, "hosts", name)

    def start(self):
        self.net.start()
        sshdir = os.path.join(self.tmp, "ssh")
        os.makedirs(sshdir)
        self.key = os.path.join(sshdir, "id_ed25519")
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "weir-deploy-test",
             "-f", self.key], timeout=30)
        auth = os.path.join(sshdir, "authorized_keys")
        shutil.copy(self.key + ".pub", auth)
        if not os.path.isdir("/run/sshd"):
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        for name in self.names:
            d = self.hostdir(name)
            os.makedirs(d)
            host_key = os.path.join(d, "ssh_host_ed25519_key")
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key], timeout=30)
            cfg = os.path.join(d, "sshd_config")
            with open(cfg, "w") as f:
                f.write(SSHD_CONFIG.format(addr=self.addr(name), host_key=host_key, dir=d,
                                           auth=auth))
            self.sshd[name] = subprocess.Popen(
                ["ip", "netns", "exec", self.net.ns(name), "/usr/sbin/sshd", "-D", "-f", cfg,
                 "-E", os.path.join(d, "sshd.log")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name in self.names:
            self._wait_port(name, 22, 15)
        return self

    def _wait_port(self, name, port, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((self.addr(name), port), 1).close()
                return
            except OSError:
                if self.sshd[name].poll() is not None or time.monotonic() > deadline:
                    log = os.path.join(self.hostdir(name), "sshd.log")
                    raise AssertionError("sshd of %s not listening: %s" % (
                        name, open(log).read() if os.path.exists(log) else "no log"))
                time.sleep(0.1)

    def pids(self, name):
        r = run(["ip", "netns", "pids", self.net.ns(name)], timeout=10, check=False)
        return [int(p) for p in r.stdout.decode().split()]

    def pidfile(self, name, svc):
        try:
            with open(os.path.join(self.hostdir(name), "run", "weir-%s.pid" % svc)) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def close(self):
        """SIGTERM to every process in our namespaces (by PID), SIGKILL to what is
        left after 15 s; then the namespaces and links."""
        live = {}
        for name in self.names:
            if self.net.ns(name) in self.net.created:
                for pid in self.pids(name):
                    live[pid] = name
        for pid in live:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 15
        while live and time.monotonic() < deadline:
            for p in self.sshd.values():
                p.poll()  # reap our direct children
            live = {p: n for p, n in live.items() if os.path.exists("/proc/%d" % p)
                    and not open("/proc/%d/stat" % p).read().split(") ")[-1].startswith("Z")}
            time.sleep(0.1)
        for pid in live:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.sshd.values():
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.net.close()
        return list(live)


def write_inventory(vms, path, stage_bin, brokers, new_brokers=()):
    """A YAML inventory (JSON is YAML): vm1 coordinator + broker 1, the brokers
    named, each host with its own prefix under the temporary directory."""
    import json
    hosts = {}
    for name in vms.names:
        d = vms.hostdir(name)
        hosts[name] = {
            "ansible_host": vms.addr(name),
            "ansible_remote_tmp": os.path.join(d, "ansible-tmp"),
            "weir_bindir": os.path.join(d, "bin"),
            "weir_confdir": os.path.join(d, "etc"),
            "weir_datadir": os.path.join(d, "data"),
            "weir_rundir": os.path.join(d, "run"),
            "weir_logdir": os.path.join(d, "log"),
            "weir_broker_id": vms.names.index(name) + 1,
        }
    inv = {"all": {
        "vars": {
            "ansible_user": "root",
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_ssh_private_key_file": vms.key,
            "ansible_ssh_common_args": "-F /dev/null -o StrictHostKeyChecking=no "
                                       "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
                                       "-o ConnectTimeout=10",
            "weir_service_manager": "process",
            "weir_manage_user": False,
            "weir_user": "root",
            "weir_group": "root",
            "weir_install_runtime_packages": False,
            "weir_bin_src_dir": stage_bin,
            "weir_start_timeout": 30,
            "weir_health_timeout": 90,
            "weir_stop_timeout": 30,
            "weir_broker_extra_config": {"group.initial.rebalance.delay.ms": 0},
        },
        "children": {
            "weir_coordinator": {"hosts": {"vm1": hosts["vm1"]}},
            "weir_brokers": {"hosts": {n: hosts[n] for n in brokers}},
            "weir_new_brokers": {"hosts": {n: hosts[n] for n in new_brokers}},
        },
    }}
    with open(path, "w") as f:
        json.dump(inv, f, indent=1)


def control_dir(tmp):
    """Where ssh's connection masters (one per host, shared by the playbooks) put
    their sockets; end_ssh_masters() ends them."""
    d = os.path.join(tmp, "cp")
    os.makedirs(d, exist_ok=True)
    return d


def end_ssh_masters(tmp, vms):
    """Ask every ssh connection master to exit; kill by PID one that does not."""
    for name in vms.names:
        sock = os.path.join(control_dir(tmp), vms.addr(name))
        if not os.path.exists(sock):
            continue
        base = ["ssh", "-F", "/dev/null", "-o", "ControlPath=" + sock, "root@" + vms.addr(name)]
        r = run(base + ["-O", "check"], timeout=10, check=False)
        m = re.search(r"pid=(\d+)", r.stderr.decode())
        run(base + ["-O", "exit"], timeout=10, check=False)
        if m:
            pid = int(m.group(1))
            deadline = time.monotonic() + 5
            while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if os.path.exists("/proc/%d" % pid):
                os.kill(pid, signal.SIGKILL)


def playbook(tmp, inventory, name, *extra, timeout=240):
    """ansible-playbook @name from deploy/ansible; returns its output. Ansible's
    home, local temporary files and retry files stay in @tmp."""
    home = os.path.join(tmp, "ansible-home")
    os.makedirs(home, exist_ok=True)
    env = dict(os.environ, HOME=home, ANSIBLE_HOME=home,
               ANSIBLE_LOCAL_TEMP=os.path.join(home, "tmp"),
               ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=300s "
                                "-o ControlPath=%s/%%h" % control_dir(tmp),
               ANSIBLE_PIPELINING="True",
               ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_RETRY_FILES_ENABLED="False",
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORKS="8", ANSIBLE_TIMEOUT="20",
               ANSIBLE_CONFIG=os.path.join(ANSIBLE_DIR, "ansible.cfg"),
               ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks")
    r = run(["ansible-playbook", "-i", inventory, os.path.join(ANSIBLE_DIR, name)] + list(extra),
            timeout=timeout, check=False, env=env, cwd=ANSIBLE_DIR)
    out = r.stdout.decode(errors="replace")
    with open(os.path.join(tmp, "playbook-%s.log" % name), "a") as f:
        f.write(out)
    if r.returncode != 0:
        raise AssertionError("ansible-playbook %s exited %d:\n%s\n%s" % (
            name, r.returncode, out[-6000:], r.stderr.decode(errors="replace")[-2000:]))
    return out


def recap(out):
    """{host: {ok: n, changed: n, ...}} from the PLAY RECAP."""
    res = {}
    for m in re.finditer(r"(?m)^(\S+)\s+:\s+(ok=.*)$", out.split("PLAY RECAP", 1)[-1]):
        res[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return res


class GroupConsumer:
    """A consumer group member reading the topic throughout (auto commit)."""

    def __init__(self, bootstrap):
        from confluent_kafka import Consumer
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": "deploy-test-group",
                           "auto.offset.reset": "earliest", "enable.auto.commit": True,
                           "auto.commit.interval.ms": 500, "session.timeout.ms": 10000,
                           "topic.metadata.refresh.interval.ms": 1000,
                           "reconnect.backoff.max.ms": 500})
        self.seen = set()
        self.errors = []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        self.c.subscribe([TOPIC])
        self.t.start()
        return self

    def _loop(self):
        try:
            while not self.stop.is_set():
                for m in self.c.consume(500, 0.2):
                    if m.error() is None:
                        self.seen.add(m.value().decode(errors="replace"))
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))

    def close(self):
        self.stop.set()
        self.t.join(15)
        self.c.close()


def partition_view(bootstrap):
    """{(topic, partition): (leader, replicas, isr)} of every topic, from Metadata."""
    from confluent_kafka.admin import AdminClient
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=20)
    return {(t.topic, p.id): (p.leader, list(p.replicas), list(p.isrs))
            for t in md.topics.values() for p in t.partitions.values()}


def partition_dirs(vms, name):
    """The directories in @name's broker log directory (partition logs, also
    the ones renamed for deletion)."""
    d = os.path.join(vms.hostdir(name), "data", "broker")
    return sorted(e for e in os.listdir(d) if os.path.isdir(os.path.join(d, e))) \
        if os.path.isdir(d) else []


class Budget:
    """The scenario's time bound: every step's subprocess timeout is capped by
    what is left of it, so the test ends (and cleans up) within @total s."""

    def __init__(self, total):
        self.deadline = time.monotonic() + total

    def left(self, step):
        left = self.deadline - time.monotonic()
        if left < 5:
            raise AssertionError("the scenario ran out of its time bound")
        return min(step, left)


SCENARIO_BOUND_S = 540
THROTTLE = 2000000  # bytes/s per broker for the moves' catch-up traffic
BULK_TOPIC = "deploy-bulk"  # data for the moves to copy, so the throttle shows
BULK_BYTES = 16 << 20


def fill_bulk(bootstrap, nbytes):
    """@nbytes of 1 KiB records (incompressible) into BULK_TOPIC, acks=all."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20,
                  "enable.idempotence": True, "compression.type": "none"})
    errs = []
    for i in range(nbytes // 1024):
        while True:
            try:
                p.produce(BULK_TOPIC, os.urandom(1024), partition=i % PARTITIONS,
                          on_delivery=lambda e, m: e and errs.append(e))
                break
            except BufferError:
                p.poll(0.05)
    left = p.flush(60)
    assert left == 0 and not errs, "bulk fill: %d left, errors %s" % (left, errs[:3])


def log_bytes(vms, name, topic):
    """Bytes of @topic's segment files in @name's broker log directory."""
    d = os.path.join(vms.hostdir(name), "data", "broker")
    total = 0
    for e in os.listdir(d):
        if e.startswith(topic + "-") and os.path.isdir(os.path.join(d, e)):
            total += sum(os.path.getsize(os.path.join(d, e, f))
                         for f in os.listdir(os.path.join(d, e)) if f.endswith(".log"))
    return total


def test_deploy_vms_add_decommission_replace_roll():
    """site.yml deploys a coordinator and three brokers over ssh to three hosts;
    a second run changes nothing. Then, with an idempotent acks=all producer
    (retries) and a consumer group running throughout:
    - add-broker.yml adds vm4 (broker 4) and rebalances with a throttle (the
      moves copy 16 MiB of bulk data and take at least 80% of bytes/throttle): broker
      4 then leads within 1 of a quarter of all partitions (the topic's and
      __consumer_offsets', from Metadata), and no throttle is left; a re-run
      changes nothing;
    - decommission.yml takes broker 2 out (weir cluster decommission --broker 2
      --wait, then stop): no partition lists broker 2 and vm2's log directory
      has no partition directory left;
    - broker 3 fails (SIGKILL), its VM's disk is wiped, and site.yml --limit
      vm3 starts it again with the same id: it re-replicates and the cluster is
      healthy (every ISR full) with no other step;
    - rolling-restart.yml restarts brokers 1, 3 and 4 one at a time, then the
      coordinator.
    At the end: no failed produce, nothing lost, duplicated or reordered, the
    group saw every acknowledged record, every ISR full. Bounded by
    SCENARIO_BOUND_S."""
    deps.require(os.geteuid() == 0, "not root", "network namespaces and sshd need root")
    why = weir_cluster.Netns.available()
    deps.require(why is None, "cannot make network namespaces here (%s)" % why,
                 "run as root where `ip netns add` is allowed")
    for tool in ("/usr/sbin/sshd", "ssh-keygen", "ansible-playbook", "start-stop-daemon"):
        deps.require(shutil.which(tool) is not None, "%s not found" % tool, INSTALL_HINT)
    try:
        import checker as weir_checker  # needs confluent_kafka
    except ImportError as e:
        deps.require(False, "confluent_kafka not importable (%s)" % e, INSTALL_HINT)

    t0 = time.monotonic()
    budget = Budget(SCENARIO_BOUND_S)
    times = {}
    tmp = tempfile.mkdtemp(prefix="weir-deploy-")
    vms = Vms(["vm1", "vm2", "vm3", "vm4"], tmp)
    ch = grp = None
    ok = False

    def step(name, fn):
        t = time.monotonic()
        r = fn()
        times[name] = time.monotonic() - t
        return r

    try:
        vms.start()
        stage_bin = os.path.join(stage_install(os.path.join(tmp, "stage")), "bin")
        inv = os.path.join(tmp, "inventory.yml")
        write_inventory(vms, inv, stage_bin, ["vm1", "vm2", "vm3"])

        out = step("site", lambda: playbook(tmp, inv, "site.yml", timeout=budget.left(240)))
        coord_pid = vms.pidfile("vm1", "coordinator")
        assert coord_pid and vms.pidfile("vm3", "broker"), out[-3000:]
        # Idempotent: a second run changes nothing (no re-format, no restart).
        rc = recap(playbook(tmp, inv, "site.yml", timeout=budget.left(240)))
        assert all(v.get("changed") == 0 for v in rc.values()), rc
        assert vms.pidfile("vm1", "coordinator") == coord_pid

        weir = os.path.join(stage_bin, "weir")
        bootstrap = ",".join("%s:9092" % vms.addr(n) for n in ("vm1", "vm2", "vm3"))
        run([weir, "-b", bootstrap, "topic", "create", TOPIC, "-p", str(PARTITIONS), "-r", "3",
             "-c", "min.insync.replicas=2"], timeout=30)
        run([weir, "-b", bootstrap, "topic", "create", BULK_TOPIC, "-p", str(PARTITIONS),
             "-r", "3", "-c", "min.insync.replicas=2"], timeout=30)
        step("bulk-fill", lambda: fill_bulk(bootstrap, BULK_BYTES))
        ch = weir_checker.Checker(bootstrap, TOPIC, PARTITIONS, rate=200, tag="d",
                                  producer_conf={"enable.idempotence": True})
        ch.start()
        grp = GroupConsumer(bootstrap).start()
        ch.wait_oks(200, 30)
        # the group has joined (so __consumer_offsets exists before the rebalance)
        deadline = time.monotonic() + 30
        while not grp.seen and time.monotonic() < deadline:
            time.sleep(0.2)
        assert grp.seen, "the consumer group read nothing in 30 s"

        # ---- add broker 4 and rebalance with a throttle ----
        write_inventory(vms, inv, stage_bin, ["vm1", "vm2", "vm3", "vm4"], new_brokers=["vm4"])
        out = step("add-broker", lambda: playbook(
            tmp, inv, "add-broker.yml", "-e", "weir_rebalance_throttle=%d" % THROTTLE,
            timeout=budget.left(300)))
        assert vms.pidfile("vm4", "broker")
        assert re.search(r"rebalance: [1-9]\d* partitions change", out), out[-3000:]
        # The throttle took effect: broker 4's copies of the bulk partitions
        # (all it has of them came by the moves) took at least 80% of
        # bytes / THROTTLE ("Moved N partitions in Xs" times the moves alone).
        moved_s = float(re.search(r"Moved \d+ partitions in ([\d.]+)s", out).group(1))
        copied = log_bytes(vms, "vm4", BULK_TOPIC)
        throttle_msg = "rebalance copied %.1f MiB to broker 4 in %.1fs (throttle %.1f MB/s)" % (
            copied / 1048576.0, moved_s, THROTTLE / 1e6)
        assert copied > BULK_BYTES // 8, throttle_msg
        assert moved_s >= 0.8 * copied / THROTTLE, throttle_msg
        # A re-run changes nothing: the broker is installed and running, and the
        # cluster is balanced ("rebalance: 0 partitions change").
        out = playbook(tmp, inv, "add-broker.yml", timeout=budget.left(240))
        assert "rebalance: 0 partitions change" in out, out[-3000:]
        rc = recap(out)
        assert all(v.get("changed") == 0 for v in rc.values()), rc
        view = partition_view(bootstrap)
        n = len(view)
        led = sum(1 for leader, _, _ in view.values() if leader == 4)
        lead_msg = "broker 4 leads %d of %d partitions after the rebalance" % (led, n)
        assert abs(led - n / 4.0) <= 1, lead_msg
        assert sum(1 for _, reps, _ in view.values() if 4 in reps) >= 3 * n // 4 - 1, view
        # --wait removed the throttle once the moves were done
        cfg = run([weir, "-b", bootstrap, "config", "describe", "--broker", "4"],
                  timeout=30).stdout.decode()
        left_set = [li for li in cfg.splitlines() if "throttled.rate" in li and "DYNAMIC" in li]
        assert not left_set, "throttle left after rebalance --wait: %s" % left_set

        # ---- decommission broker 2 ----
        step("decommission", lambda: playbook(
            tmp, inv, "decommission.yml", "-e", "weir_decommission_host=vm2",
            "-e", "weir_rebalance_throttle=%d" % THROTTLE, timeout=budget.left(300)))
        view = partition_view(bootstrap)
        on2 = sorted(k for k, (_, reps, _) in view.items() if 2 in reps)
        assert not on2, "broker 2 still holds replicas of %s" % on2
        assert not partition_dirs(vms, "vm2"), partition_dirs(vms, "vm2")
        assert vms.pidfile("vm2", "broker") is None  # stopped (PID file removed)
        # the operator takes vm2 out of the inventory
        write_inventory(vms, inv, stage_bin, ["vm1", "vm3", "vm4"])
        bootstrap = ",".join("%s:9092" % vms.addr(n) for n in ("vm1", "vm3", "vm4"))

        # ---- broker 3 fails; a new disk, the same broker.id ----
        t = time.monotonic()
        os.kill(vms.pidfile("vm3", "broker"), signal.SIGKILL)
        shutil.rmtree(os.path.join(vms.hostdir("vm3"), "data"))
        playbook(tmp, inv, "site.yml", "--limit", "vm3", timeout=budget.left(240))
        assert vms.pidfile("vm3", "broker")
        run([weir, "-b", bootstrap, "cluster", "health", "--exit-when-healthy", "--timeout",
             str(int(budget.left(120)))], timeout=budget.left(130))
        times["replace"] = time.monotonic() - t
        assert partition_dirs(vms, "vm3"), "broker 3 re-created no partition"
        view = partition_view(bootstrap)
        not3 = sorted(k for k, (_, reps, isr) in view.items() if 3 in reps and 3 not in isr)
        assert not not3, "broker 3 not back in the ISR of %s" % not3

        # ---- roll-restart every broker, then the coordinator ----
        before = {nm: vms.pidfile(nm, "broker") for nm in ("vm1", "vm3", "vm4")}
        # A restart (no weir_bin_src_dir: the install steps are skipped).
        step("rolling-restart", lambda: playbook(
            tmp, inv, "rolling-restart.yml", "-e", "weir_bin_src_dir=",
            "-e", "weir_restart_coordinator=true", timeout=budget.left(400)))
        after = {nm: vms.pidfile(nm, "broker") for nm in before}
        assert all(after[nm] and after[nm] != before[nm] for nm in before), (before, after)
        assert vms.pidfile("vm1", "coordinator") not in (None, coord_pid)

        time.sleep(2)  # some records after the last restart
        r = ch.finish()
        summary = ch.summary(r)
        problems = ch.violations(r)
        for k in ("duplicated", "out_of_order"):
            if r[k]:
                problems.append("%s=%d (e.g. %s)" % (k, len(r[k]), r[k][:5]))
        if r["failed"] or r["unknown"]:
            problems.append("failed=%d unknown=%d (%r)" % (r["failed"], r["unknown"],
                                                          r["error_names"]))
        acked = {v for v, rec in ch.sent.items() if rec[2] == "ok"}
        deadline = time.monotonic() + 30
        while not acked <= grp.seen and time.monotonic() < deadline:
            time.sleep(0.2)
        if not acked <= grp.seen:
            problems.append("the group missed %d records" % len(acked - grp.seen))
        problems += ["group consumer: %s" % e for e in grp.errors]
        health = run([weir, "-b", bootstrap, "cluster", "health"], timeout=30, check=False)
        if health.returncode != 0:
            problems.append("not healthy at the end: %s" % health.stdout.decode())
        view = partition_view(bootstrap)
        short = sorted(k for k, (_, reps, isr) in view.items()
                       if sorted(isr) != sorted(reps) or len(reps) != 3)
        if short:
            problems.append("ISR not full (or not 3 replicas) at the end: %s" % short[:10])
        print("deploy-vms: %s; total %.1fs; %s; %s; %s" % (
            ", ".join("%s %.1fs" % kv for kv in times.items()), time.monotonic() - t0,
            lead_msg, throttle_msg, summary))
        assert not problems, "%s: %s" % (summary, problems)
        ok = True
    finally:
        if ch is not None and getattr(ch, "result", None) is None:
            ch.abort()
        if grp is not None:
            grp.close()
        if not ok:
            for name in vms.names:
                for f in ("log/weir-coordinator.log", "log/weir-broker.log", "sshd.log"):
                    p = os.path.join(vms.hostdir(name), f)
                    if os.path.exists(p):
                        print("==== %s %s\n%s" % (name, f, open(p, errors="replace").read()[-3000:]))
        end_ssh_masters(tmp, vms)
        left = vms.close()
        leftovers = vms.net.leftovers()
        if os.environ.get("WEIR_KEEP_LOGS") == "1":
            print("deploy-vms: logs kept in %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        assert not leftovers, "namespaces or links left: %s" % leftovers
        assert not left, "processes that needed SIGKILL: %s" % left
