#!/usr/bin/env bash
# Weir's test command: installs what is missing, builds a normal and an
# AddressSanitizer+UndefinedBehaviorSanitizer configuration (warnings are errors in
# both), runs every suite in each, runs each fuzz target briefly under libFuzzer,
# and ends with one line "N passed, N failed". Exits non-zero on any failure.
#
#   tests/run.sh                 everything
#   WEIR_FUZZ_SECONDS=0 tests/run.sh   skip the libFuzzer runs (corpus replay still runs)
#   WEIR_BUILD_ROOT=dir          where build trees go (default: build/)
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build_root=${WEIR_BUILD_ROOT:-$root/build}
fuzz_seconds=${WEIR_FUZZ_SECONDS:-20}
jobs=$(nproc 2>/dev/null || echo 2)

passed=0
failed=0
failures=()

note() { printf '\n=== %s\n' "$*"; }

if ! "$root/deploy/install-deps.sh"; then
    echo "tests/run.sh: installing dependencies failed" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

# configure NAME COMPILER [meson args...]: (re)configure a build tree.
configure() {
    local name=$1 compiler=$2
    shift 2
    local dir="$build_root/$name"
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "$@" >"$dir.setup.log" 2>&1
    else
        mkdir -p "$build_root"
        CC=$compiler meson setup "$dir" "$@" >"$dir.setup.log" 2>&1
    fi
}

# count_meson DIR: add the results of the last `meson test` in DIR.
count_meson() {
    local log="$1/meson-logs/testlog.json"
    [ -f "$log" ] || return 0
    local line
    while IFS=$'\t' read -r result name; do
        case "$result" in
            OK | EXPECTEDFAIL) passed=$((passed + 1)) ;;
            SKIP) ;;
            *) failed=$((failed + 1)); failures+=("$2: $name ($result)") ;;
        esac
    done < <(/usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if line:
        t = json.loads(line)
        print(t["result"] + "\t" + t["name"])
' "$log")
}

# build_and_test NAME COMPILER [meson args...]
build_and_test() {
    local name=$1 compiler=$2
    shift 2
    local dir="$build_root/$name"
    note "build $name"
    if ! configure "$name" "$compiler" "$@"; then
        cat "$dir.setup.log"
        failed=$((failed + 1)); failures+=("$name: meson setup")
        return
    fi
    if ! ninja -C "$dir" -j "$jobs"; then
        failed=$((failed + 1)); failures+=("$name: build")
        return
    fi
    note "test $name"
    rm -f "$dir/meson-logs/testlog.json"
    meson test -C "$dir" --print-errorlogs --num-processes "$jobs" --no-rebuild
    count_meson "$dir" "$name"
}

# Sanitizer findings must fail the test, not just print.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:strict_string_checks=1}

build_and_test normal gcc -Dwerror=true -Dbuildtype=debugoptimized
build_and_test sanitize gcc -Dwerror=true -Dbuildtype=debug \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args=-fno-sanitize-recover=all

# Integration tests with real clients (pytest + kcat, kafka-python, confluent-kafka,
# node clients), a separate step after the meson suites: they run against each
# build's binaries (WEIR_BUILD_DIR), so the sanitizer build's processes are
# exercised by real clients too (a process that exits non-zero, as on a sanitizer
# report, fails its test). Bounded by `timeout`; counts join the totals.
# pytest_suite NAME LABEL DIR BOUND: run pytest on tests/DIR against build NAME, bounded
# by BOUND seconds, and add its junit counts to the totals.
pytest_suite() {
    local name=$1 label=$2 suite=$3 bound=$4
    local dir="$build_root/$name"
    local xml="$dir/pytest-$label.xml"
    note "pytest $label (against $dir)"
    if [ ! -x "$dir/broker/weir-broker" ] || [ ! -x "$dir/coordinator/weir-coordinator" ]; then
        failed=$((failed + 1)); failures+=("pytest $label $name: weir-broker/weir-coordinator not built")
        return
    fi
    rm -f "$xml"
    WEIR_BUILD_DIR="$dir" PYTHONDONTWRITEBYTECODE=1 timeout -k 10 "$bound" \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider --junitxml="$xml" "$root/tests/$suite"
    local rc=$?
    local counts
    if ! counts=$(/usr/bin/python3 -c '
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = f = s = 0
for x in suites:
    t += int(x.get("tests", 0))
    f += int(x.get("failures", 0)) + int(x.get("errors", 0))
    s += int(x.get("skipped", 0))
print(t - f - s, f)
' "$xml" 2>/dev/null); then
        failed=$((failed + 1)); failures+=("pytest $label $name: no results (exit $rc; timeout or crash)")
        return
    fi
    local p f
    read -r p f <<<"$counts"
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$f" -gt 0 ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; }; then
        [ "$f" -gt 0 ] || failed=$((failed + 1))
        failures+=("pytest $label $name: $f failed (exit $rc; see output above)")
    fi
}
pytest_integration() { pytest_suite "$1" integration integration 900; }
pytest_integration normal
pytest_integration sanitize

# Broker-failure scenarios (tests/fault: kill -9, SIGSTOP, rolling SIGTERM, coordinator
# restart, a network partition in namespaces) with the produce/consume checker and
# the replica log comparison, against each build. WEIR_SOAK must stay unset here: CI
# runs every scenario once (about 4 min per build is the budget; 360 s hard bound).
pytest_fault() { WEIR_SOAK= pytest_suite "$1" fault fault 360; }
pytest_fault normal
pytest_fault sanitize

# libFuzzer: a short run of every target, starting from its committed corpus.
if [ "$fuzz_seconds" -gt 0 ]; then
    name=fuzz
    dir="$build_root/$name"
    note "build $name (clang, libFuzzer)"
    if configure "$name" clang -Dwerror=true -Dbuildtype=debugoptimized -Dfuzzing=true \
        -Db_sanitize=address,undefined -Db_lundef=false \
        -Dc_args=-fno-sanitize-recover=all && ninja -C "$dir" -j "$jobs"; then
        for fuzzer in "$dir"/tests/fuzz/*-fuzzer; do
            [ -x "$fuzzer" ] || continue
            target=$(basename "$fuzzer" -fuzzer)
            note "fuzz $target for ${fuzz_seconds}s"
            work=$(mktemp -d)
            cp -r "$root/tests/fuzz/corpus/$target/." "$work/" 2>/dev/null || true
            if "$fuzzer" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -malloc_limit_mb=256 \
                -timeout=10 -print_final_stats=1 -artifact_prefix="$dir/$target-" "$work" \
                >"$dir/$target.fuzz.log" 2>&1; then
                passed=$((passed + 1))
                grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' "$dir/$target.fuzz.log" | tail -1
            else
                tail -40 "$dir/$target.fuzz.log"
                failed=$((failed + 1)); failures+=("fuzz: $target (see $dir/$target.fuzz.log)")
            fi
            rm -rf "$work"
        done
    else
        cat "$dir.setup.log" 2>/dev/null | tail -20
        failed=$((failed + 1)); failures+=("fuzz: build")
    fi
fi

echo
if [ ${#failures[@]} -gt 0 ]; then
    echo "Failures:"
    printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
