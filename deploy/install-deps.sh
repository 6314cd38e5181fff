#!/usr/bin/env bash
# Install what building and testing Weir needs on Debian 12, only what is missing.
# Idempotent and fast when everything is there. Used by tests/run.sh and by the
# local-cluster script. Set WEIR_SKIP_INSTALL=1 to skip (you manage packages).
#
#   deploy/install-deps.sh            what building and testing needs
#   deploy/install-deps.sh --bench    also the benchmark-only packages: the NATS
#                                     JetStream side-by-side of tests/bench/bench_kafka
#                                     (nats-server, libnats-dev; never installed by default)
set -euo pipefail

bench=0
for arg in "$@"; do
    case "$arg" in
        --bench) bench=1 ;;
        -h | --help)
            echo "usage: $0 [--bench]"
            exit 0
            ;;
        *)
            echo "install-deps: unknown argument: $arg (usage: $0 [--bench])" >&2
            exit 2
            ;;
    esac
done

packages=(
    # build
    gcc meson ninja-build pkg-config
    libevent-dev libprotobuf-c-dev protobuf-c-compiler libssl-dev libzstd-dev
    # compression codecs (common/codec.c)
    zlib1g-dev libsnappy-dev liblz4-dev
    # the weir CLI (cli/) is a librdkafka client; reassignment plans are JSON (jansson)
    librdkafka-dev libjansson-dev
    # tests; tmux gives the CLI's progress-line test a terminal
    libcmocka-dev python3 tmux
    # integration tests with real clients
    python3-pytest python3-pytest-timeout kcat python3-kafka python3-confluent-kafka
    # kafka-python's snappy, lz4 and zstd codecs (not pulled in by python3-kafka)
    python3-snappy python3-lz4 python3-zstandard
    # /metrics parsed as Prometheus does (tests/integration/test_metrics.py, test_broker_metrics.py)
    python3-prometheus-client
    # broker-failure tests: network namespaces, veth, routes (tests/fault scenario 8)
    iproute2
    # deployment tests (tests/integration/test_deploy_vms.py): Ansible drives sshd
    # in network namespaces; systemd-analyze verifies the units in deploy/systemd
    ansible openssh-server openssh-client systemd
    # benchmarks: loopback baseline
    iperf3
    # fuzzing (libFuzzer ships with clang's runtime)
    clang libclang-rt-14-dev
)
if [ "$bench" = 1 ]; then
    # benchmark only: NATS JetStream R3 side by side (bench_nats); Debian's package
    # does not start the service where policy-rc.d forbids it, and bench_nats starts
    # its own servers on free ports either way
    packages+=(nats-server libnats-dev)
fi

if [ "${WEIR_SKIP_INSTALL:-0}" = 1 ]; then
    exit 0
fi

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing+=("$p") ;;
    esac
done

# Node.js for the kafkajs / @platformatic/kafka tests: the machine image ships a
# recent node in /usr/local; Debian's nodejs is the fallback when there is none.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "install-deps: missing packages (${missing[*]}) and not root; install them or run as root" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
