#!/usr/bin/env bash
# weir-local.sh: a local Weir cluster on 127.0.0.1 for trying Weir out: one
# weir-coordinator and three weir-brokers, in the background, with their data,
# logs, config files and PID files in one directory.
#
#   deploy/weir-local.sh [start]     install what is missing, build, start, wait until ready
#   deploy/weir-local.sh status      each process: running/stopped, PID, port
#                                    (exit 0: all running, 3: none, 4: some)
#   deploy/weir-local.sh stop        brokers first (controlled shutdown), then the coordinator
#   deploy/weir-local.sh restart     stop, then start
#   deploy/weir-local.sh --help
#
# Options (each also has an environment variable):
#   --data DIR        WEIR_LOCAL_DATA         data, logs, configs, PID files (default: <checkout>/weir-data)
#   --build-dir DIR   WEIR_BUILD_DIR          use binaries of an existing meson build tree and do
#                                             not build (default: <checkout>/build/release,
#                                             configured as a release build and rebuilt by start)
#   WEIR_SKIP_INSTALL=1                       do not run deploy/install-deps.sh
#   WEIR_LOCAL_COORD_PORT=2181                coordinator port
#   WEIR_LOCAL_KAFKA_PORTS="9092 9093 9094"   Kafka ports of brokers 1, 2, 3
#   WEIR_LOCAL_KAFKA_BASE_PORT=N              shorthand for "N N+1 N+2"
#   WEIR_LOCAL_METRICS_PORTS="9644 9645 9646 9647"
#                                             /metrics and /health (metrics.listener) of
#                                             brokers 1, 2, 3 and the coordinator; "off": none
#   WEIR_LOCAL_TIMEOUT=30                     seconds to wait for readiness and for shutdown
#
# The script only ever signals processes whose /proc/PID/cmdline is one of our
# binaries started with a config file of this data directory, so a stale PID file
# whose PID was reused by something else is ignored, never killed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prog=deploy/weir-local.sh

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

die() {
    echo "weir-local: $*" >&2
    exit 1
}

cmd=
data_dir=${WEIR_LOCAL_DATA:-}
build_dir=${WEIR_BUILD_DIR:-}
while [ $# -gt 0 ]; do
    case "$1" in
        -h | --help | help) usage; exit 0 ;;
        --data) [ $# -ge 2 ] || die "--data needs a directory"; data_dir=$2; shift 2 ;;
        --data=*) data_dir=${1#--data=}; shift ;;
        --build-dir) [ $# -ge 2 ] || die "--build-dir needs a directory"; build_dir=$2; shift 2 ;;
        --build-dir=*) build_dir=${1#--build-dir=}; shift ;;
        start | stop | status | restart)
            [ -z "$cmd" ] || die "one command at a time (got '$cmd' and '$1')"
            cmd=$1; shift ;;
        *) die "unknown argument '$1' (try $prog --help)" ;;
    esac
done
cmd=${cmd:-start}

# An existing build tree given by the user is used as it is; the default one is
# (re)built by start.
build_it=1
if [ -n "$build_dir" ]; then
    build_it=0
    build_dir=$(cd "$build_dir" 2>/dev/null && pwd) || die "build directory '$build_dir' does not exist"
else
    build_dir=$root/build/release
fi
data_dir=${data_dir:-$root/weir-data}
case "$cmd" in
    start | restart) mkdir -p "$data_dir" || die "cannot create data directory '$data_dir'" ;;
esac
if [ -d "$data_dir" ]; then
    data_dir=$(cd "$data_dir" && pwd)
elif [ "${data_dir#/}" = "$data_dir" ]; then
    data_dir=$(pwd)/$data_dir
fi
# How to run this script again for this cluster (for the hints printed).
again=$prog
[ "$data_dir" = "$root/weir-data" ] || again="$prog --data $data_dir"

coord_bin=$build_dir/coordinator/weir-coordinator
broker_bin=$build_dir/broker/weir-broker
weir_bin=$build_dir/cli/weir
timeout_s=${WEIR_LOCAL_TIMEOUT:-30}
coord_port=${WEIR_LOCAL_COORD_PORT:-2181}
if [ -n "${WEIR_LOCAL_KAFKA_PORTS:-}" ]; then
    read -r -a kafka_ports <<<"$WEIR_LOCAL_KAFKA_PORTS"
elif [ -n "${WEIR_LOCAL_KAFKA_BASE_PORT:-}" ]; then
    b=$WEIR_LOCAL_KAFKA_BASE_PORT
    kafka_ports=("$b" "$((b + 1))" "$((b + 2))")
else
    kafka_ports=(9092 9093 9094)
fi
[ ${#kafka_ports[@]} -eq 3 ] || die "WEIR_LOCAL_KAFKA_PORTS must name 3 ports (got '${kafka_ports[*]}')"
metrics_ports=()
if [ "${WEIR_LOCAL_METRICS_PORTS:-}" != off ]; then
    read -r -a metrics_ports <<<"${WEIR_LOCAL_METRICS_PORTS:-9644 9645 9646 9647}"
    [ ${#metrics_ports[@]} -eq 4 ] ||
        die "WEIR_LOCAL_METRICS_PORTS must name 4 ports (brokers 1-3, coordinator) or be 'off' (got '${metrics_ports[*]}')"
fi
for p in "$coord_port" "${kafka_ports[@]}" "${metrics_ports[@]}"; do
    [[ "$p" =~ ^[0-9]+$ ]] && [ "$p" -ge 1 ] && [ "$p" -le 65535 ] || die "bad port '$p'"
done
[[ "$timeout_s" =~ ^[0-9]+$ ]] || die "bad WEIR_LOCAL_TIMEOUT '$timeout_s'"
bootstrap=$(printf '127.0.0.1:%s,' "${kafka_ports[@]}")
bootstrap=${bootstrap%,}

# Process names: coordinator, broker-1, broker-2, broker-3.
names=(coordinator broker-1 broker-2 broker-3)
conf_of() {
    case "$1" in
        coordinator) echo "$data_dir/coordinator.properties" ;;
        broker-*) echo "$data_dir/server-${1#broker-}.properties" ;;
    esac
}
bin_of() { [ "$1" = coordinator ] && echo "$coord_bin" || echo "$broker_bin"; }
configured_port() { [ "$1" = coordinator ] && echo "$coord_port" || echo "${kafka_ports[$((${1#broker-} - 1))]}"; }
# metrics_port_of NAME: its metrics.listener port, empty when metrics are off.
metrics_port_of() {
    [ ${#metrics_ports[@]} -eq 4 ] || return 0
    [ "$1" = coordinator ] && echo "${metrics_ports[3]}" || echo "${metrics_ports[$((${1#broker-} - 1))]}"
}
# port_of NAME: the port in NAME's config file when there is one (what a running
# cluster uses, even if this run was given other ports), else the configured one.
port_of() {
    local f p=
    f=$(conf_of "$1")
    [ -f "$f" ] && p=$(sed -n 's/^listeners=\(PLAINTEXT:\/\/\)\{0,1\}[^:]*:\([0-9]*\).*/\2/p' "$f" | head -1)
    [ -n "$p" ] && echo "$p" || configured_port "$1"
}
pidfile_of() { echo "$data_dir/$1.pid"; }
log_of() { echo "$data_dir/$1.log"; }

# ours PID NAME: is PID alive and one of our binaries running this data
# directory's config file of NAME? (argv[0] by basename: a rebuilt binary or a
# different build tree still counts as ours.)
ours() {
    local pid=$1 name=$2 want
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    local -a argv=()
    mapfile -d '' -t argv <"/proc/$pid/cmdline" 2>/dev/null || return 1
    [ ${#argv[@]} -ge 3 ] || return 1
    want=weir-broker
    [ "$name" = coordinator ] && want=weir-coordinator
    [ "$(basename -- "${argv[0]}")" = "$want" ] || return 1
    local i
    for ((i = 1; i < ${#argv[@]} - 1; i++)); do
        if [ "${argv[i]}" = --config ] && [ "${argv[i + 1]}" = "$(conf_of "$name")" ]; then
            return 0
        fi
    done
    return 1
}

# pid_of NAME: print the PID of NAME if it is running (and ours), else fail.
pid_of() {
    local f pid
    f=$(pidfile_of "$1")
    [ -f "$f" ] || return 1
    pid=$(head -c 32 "$f" 2>/dev/null | tr -dc 0-9)
    ours "$pid" "$1" || return 1
    echo "$pid"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# who_listens PORT: a hint of what holds PORT, when ss can tell.
who_listens() {
    command -v ss >/dev/null 2>&1 || return 0
    ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -1
}

status() {
    local name pid running=0
    printf '%-12s %-8s %-8s %s\n' PROCESS STATE PID PORT
    for name in "${names[@]}"; do
        if pid=$(pid_of "$name"); then
            printf '%-12s %-8s %-8s %s\n' "$name" running "$pid" "127.0.0.1:$(port_of "$name")"
            running=$((running + 1))
        else
            printf '%-12s %-8s %-8s %s\n' "$name" stopped - "127.0.0.1:$(port_of "$name")"
        fi
    done
    echo "data: $data_dir"
    return $((running == ${#names[@]} ? 0 : running == 0 ? 3 : 4))
}

write_configs() {
    local i
    cat >"$(conf_of coordinator)" <<EOF
# Written by $prog; rewritten on every start (edit the script, not this file).
node.id=1
listeners=127.0.0.1:$coord_port
data.dir=$data_dir/coordinator
$(metrics_port_of coordinator | sed 's/^/metrics.listener=127.0.0.1:/')
# Three replicas for every partition, so the cluster survives the loss of a broker.
default.replication.factor=3
offsets.topic.replication.factor=3
EOF
    for i in 1 2 3; do
        cat >"$(conf_of "broker-$i")" <<EOF
# Written by $prog; rewritten on every start (edit the script, not this file).
broker.id=$i
listeners=PLAINTEXT://127.0.0.1:${kafka_ports[$((i - 1))]}
advertised.listeners=PLAINTEXT://127.0.0.1:${kafka_ports[$((i - 1))]}
coordinator.connect=127.0.0.1:$coord_port
log.dirs=$data_dir/broker-$i
$(metrics_port_of "broker-$i" | sed 's/^/metrics.listener=127.0.0.1:/')
# Auto-created topics get three replicas; acks=all needs two of them in sync.
default.replication.factor=3
min.insync.replicas=2
EOF
    done
}

# launch NAME: start NAME in its own session, detached from this terminal, with
# stdout (the ready line) and stderr in its log; the previous log is kept as .1.
launch() {
    local name=$1 log pid
    log=$(log_of "$name")
    [ -f "$log" ] && mv -f "$log" "$log.1"
    # In a non-interactive shell a background job is not a process-group leader,
    # so setsid and nohup exec in place and $! is the server's own PID.
    # The coordinator formats its data directory (a new cluster id) on the very
    # first start only: a directory that has an identity keeps it, and one that
    # is not empty but unformatted is refused rather than turned into a new cluster.
    local -a extra=()
    [ "$name" = coordinator ] && extra=(--format-if-empty)
    setsid nohup "$(bin_of "$name")" --config "$(conf_of "$name")" ${extra[@]+"${extra[@]}"} >"$log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$(pidfile_of "$name")"
}

# wait_ready NAME: until NAME's ready line is in its log; fail if it exits or
# the deadline passes.
wait_ready() {
    local name=$1 pattern deadline pid
    pattern="weir-broker ready: "
    [ "$name" = coordinator ] && pattern="weir-coordinator ready: "
    pid=$(head -c 32 "$(pidfile_of "$name")" | tr -dc 0-9)
    deadline=$((SECONDS + timeout_s))
    while [ $SECONDS -lt $deadline ]; do
        if grep -q "^$pattern" "$(log_of "$name")" 2>/dev/null; then
            echo "  $(grep -m1 "^$pattern" "$(log_of "$name")")"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "weir-local: $name exited before it was ready; the end of $(log_of "$name"):" >&2
            tail -n 20 "$(log_of "$name")" >&2 || true
            return 1
        fi
        sleep 0.2
    done
    echo "weir-local: $name not ready within ${timeout_s}s; the end of $(log_of "$name"):" >&2
    tail -n 20 "$(log_of "$name")" >&2 || true
    return 1
}

# wait_cluster: until broker 1's metadata lists all three brokers (when kcat is
# there to ask; otherwise the three ready lines are what we have).
wait_cluster() {
    command -v kcat >/dev/null 2>&1 || return 0
    local deadline=$((SECONDS + timeout_s)) n=0
    while [ $SECONDS -lt $deadline ]; do
        n=$(timeout 10 kcat -L -b "127.0.0.1:${kafka_ports[0]}" -m 5 2>/dev/null |
            sed -n 's/^ *\([0-9]*\) brokers:.*/\1/p' | head -1 || true)
        [ "${n:-0}" = 3 ] && return 0
        sleep 0.5
    done
    echo "weir-local: the cluster did not list 3 brokers within ${timeout_s}s (last: ${n:-none})" >&2
    return 1
}

build() {
    if [ "${WEIR_SKIP_INSTALL:-0}" != 1 ]; then
        "$root/deploy/install-deps.sh" || die "installing dependencies failed (set WEIR_SKIP_INSTALL=1 to skip)"
    fi
    if [ "$build_it" = 1 ]; then
        echo "weir-local: building in $build_dir (release)"
        # Configure once; afterwards ninja re-runs meson by itself when a
        # meson.build changes (every source is listed explicitly).
        if [ ! -f "$build_dir/build.ninja" ]; then
            mkdir -p "$(dirname "$build_dir")"
            meson setup "$build_dir" "$root" --buildtype=release \
                >"$build_dir.setup.log" 2>&1 || {
                    tail -n 30 "$build_dir.setup.log" >&2
                    die "meson setup failed (full log: $build_dir.setup.log)"
                }
        fi
        ninja -C "$build_dir" broker/weir-broker coordinator/weir-coordinator cli/weir >"$build_dir.build.log" 2>&1 || {
            tail -n 30 "$build_dir.build.log" >&2
            die "build failed (full log: $build_dir.build.log)"
        }
    fi
    [ -x "$coord_bin" ] || die "$coord_bin is missing (is '$build_dir' a built meson tree?)"
    [ -x "$broker_bin" ] || die "$broker_bin is missing (is '$build_dir' a built meson tree?)"
}

metrics_banner() {
    [ ${#metrics_ports[@]} -eq 4 ] || return 0
    cat <<EOF
Metrics and health (Prometheus text, docs/metrics.md): brokers on ports ${metrics_ports[0]}, ${metrics_ports[1]}, ${metrics_ports[2]}, coordinator on ${metrics_ports[3]}
  curl -s 127.0.0.1:${metrics_ports[0]}/health
  curl -s 127.0.0.1:${metrics_ports[0]}/metrics | grep '^weir_kafka_requests_total'

EOF
}

print_usage_block() {
    cat <<EOF

Weir is running: coordinator 127.0.0.1:$coord_port, brokers $bootstrap
Data and logs: $data_dir

With the weir CLI ($weir_bin; 'export WEIR_BROKERS=$bootstrap' spares the -b):
  $weir_bin -b $bootstrap topic create demo -p 3 -r 3
  echo hello | $weir_bin -b $bootstrap produce demo
  $weir_bin -b $bootstrap consume demo --from-beginning -n 1
  $weir_bin -b $bootstrap topic describe demo
  $weir_bin -b $bootstrap cluster health

Or with kcat:
  echo hello | kcat -P -b $bootstrap -t demo
  kcat -C -b $bootstrap -t demo -o beginning -e

With kafka-python (Debian's python3-kafka, hence /usr/bin/python3):
  /usr/bin/python3 -c 'from kafka import KafkaProducer as P; p = P(bootstrap_servers="$bootstrap"); p.send("demo", b"hi"); p.flush()'
  /usr/bin/python3 -c 'from kafka import KafkaConsumer as C; [print(m.value) for m in C("demo", bootstrap_servers="$bootstrap", auto_offset_reset="earliest", consumer_timeout_ms=5000)]'

$(metrics_banner)Status: $again status    Stop: $again stop
EOF
}

stop_cluster() {
    local name pid deadline left
    local -a pids=()
    # Brokers first, all at once: each does its controlled shutdown while the
    # coordinator is still there to hand its partitions over.
    for phase in brokers coordinator; do
        pids=()
        for name in "${names[@]}"; do
            if [ "$phase" = brokers ] && [ "$name" = coordinator ]; then continue; fi
            if [ "$phase" = coordinator ] && [ "$name" != coordinator ]; then continue; fi
            if pid=$(pid_of "$name"); then
                echo "weir-local: stopping $name (pid $pid)"
                kill -TERM "$pid" 2>/dev/null || true
                pids+=("$pid:$name")
            fi
        done
        deadline=$((SECONDS + timeout_s))
        while :; do
            left=0
            for entry in ${pids[@]+"${pids[@]}"}; do
                ours "${entry%%:*}" "${entry#*:}" && left=$((left + 1))
            done
            [ $left -eq 0 ] && break
            if [ $SECONDS -ge $deadline ]; then
                for entry in "${pids[@]}"; do
                    if ours "${entry%%:*}" "${entry#*:}"; then
                        echo "weir-local: ${entry#*:} (pid ${entry%%:*}) did not stop within ${timeout_s}s; killing it" >&2
                        kill -KILL "${entry%%:*}" 2>/dev/null || true
                    fi
                done
                sleep 0.5
                break
            fi
            sleep 0.2
        done
    done
    for name in "${names[@]}"; do
        pid_of "$name" >/dev/null || rm -f "$(pidfile_of "$name")"
    done
    echo "weir-local: stopped (data kept in $data_dir)"
}

abort_start() {
    echo "weir-local: start failed; stopping what was started (logs in $data_dir)" >&2
    stop_cluster >&2
    exit 1
}

start_cluster() {
    local name alive=0 port who
    for name in "${names[@]}"; do
        pid_of "$name" >/dev/null && alive=$((alive + 1))
    done
    if [ $alive -eq ${#names[@]} ]; then
        echo "weir-local: already running from $data_dir"
        status || true
        echo "Stop it with: $again stop"
        exit 0
    fi
    if [ $alive -gt 0 ]; then
        echo "weir-local: partly running from $data_dir:" >&2
        status >&2 || true
        die "run '$again restart' (or '$again stop' first)"
    fi
    build
    for name in "${names[@]}"; do
        rm -f "$(pidfile_of "$name")"
        for port in $(configured_port "$name") $(metrics_port_of "$name"); do
            if port_busy "$port"; then
                who=$(who_listens "$port")
                die "port $port (for $name) is already in use${who:+ by $who}; stop that process or choose other ports (WEIR_LOCAL_COORD_PORT, WEIR_LOCAL_KAFKA_PORTS, WEIR_LOCAL_METRICS_PORTS)"
            fi
        done
    done
    write_configs
    mkdir -p "$data_dir/coordinator" "$data_dir/broker-1" "$data_dir/broker-2" "$data_dir/broker-3"
    echo "weir-local: starting in $data_dir"
    # On any failure from here on, stop what was started: no half cluster left.
    launch coordinator
    wait_ready coordinator || abort_start
    for name in broker-1 broker-2 broker-3; do
        launch "$name"
    done
    for name in broker-1 broker-2 broker-3; do
        wait_ready "$name" || abort_start
    done
    wait_cluster || abort_start
    print_usage_block
}

case "$cmd" in
    start) start_cluster ;;
    stop) stop_cluster ;;
    restart) stop_cluster; start_cluster ;;
    status)
        rc=0
        status || rc=$?
        exit $rc
        ;;
esac
