#!/usr/bin/env bash
# Weir's test command: installs what is missing, builds a normal and an
# AddressSanitizer+UndefinedBehaviorSanitizer configuration (warnings are errors in
# both), runs every suite in each, runs each fuzz target briefly under libFuzzer,
# and ends with one line "N passed, N failed, N skipped", also when it stops early.
# Exits non-zero on any failure.
#
#   tests/run.sh                 everything
#   WEIR_FUZZ_SECONDS=0 tests/run.sh   skip the libFuzzer runs (corpus replay still runs;
#                                the runs not done count as skipped)
#   WEIR_BUILD_ROOT=dir          where build trees go (default: build/)
#   CI=true                      CI machine: every skip is a failure (CI installs
#                                everything, so a skip there means something did not run)
#
# Skips are counted and listed by name wherever they come from: meson tests that exit
# 77, cmocka cases that call skip(), pytest skips (tests/support/deps.py: a missing
# dependency skips, and fails under CI=true). An exit status of meson test or pytest
# that says something went wrong is a failure even when no test result says so.
set -uo pipefail

passed=0
failed=0
skipped=0
failures=()
skips=()
finished=0
case "${CI:-}" in
    [Tt][Rr][Uu][Ee] | 1 | [Yy][Ee][Ss]) ci=1 ;;
    *) ci=0 ;;
esac

note() { printf '\n=== %s\n' "$*"; }
fail() { failed=$((failed + 1)); failures+=("$1"); }
skip() { skipped=$((skipped + 1)); skips+=("$1"); }

# summary: the lists and the last line "N passed, N failed, N skipped", on every exit
# (the end, an early stop, an interrupt, a shell error); exit 1 if anything failed.
# shellcheck disable=SC2317  # run by the EXIT trap
summary() {
    local rc=$?
    trap - EXIT
    if [ "$finished" != 1 ]; then
        fail "tests/run.sh stopped before the end (exit status $rc); later suites did not run"
    fi
    if [ "$ci" = 1 ] && [ "$skipped" -gt 0 ]; then
        local s
        for s in "${skips[@]}"; do
            fail "skipped under CI=true (CI machines run everything): $s"
        done
        skipped=0
        skips=()
    fi
    echo
    if [ ${#skips[@]} -gt 0 ]; then
        echo "Skipped:"
        printf '  %s\n' "${skips[@]}"
    fi
    if [ ${#failures[@]} -gt 0 ]; then
        echo "Failures:"
        printf '  %s\n' "${failures[@]}"
    fi
    echo "$passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ] && exit 0
    exit 1
}
trap summary EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop_early WHY: a failure after which nothing else can run.
stop_early() {
    fail "$1"
    finished=1
    exit 1
}

if ! root=$(cd "$(dirname "$0")/.." && pwd) || ! cd "$root"; then
    stop_early "cannot enter the source tree"
fi
build_root=${WEIR_BUILD_ROOT:-$root/build}
fuzz_seconds=${WEIR_FUZZ_SECONDS:-20}
jobs=$(nproc 2>/dev/null || echo 2)

if ! "$root/deploy/install-deps.sh"; then
    echo "tests/run.sh: installing dependencies failed" >&2
    stop_early "deploy/install-deps.sh: installing dependencies failed (nothing was built or run)"
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

# count_results LABEL KIND FILE: add the results in FILE (KIND meson: a testlog.json;
# junit: pytest's XML) to the totals, each failure and skip named "LABEL: test". Sets
# n_results and n_failed to this file's counts; returns non-zero when FILE cannot be
# read (the caller says why).
count_results() {
    local label=$1 kind=$2 file=$3 rows r name detail
    n_results=0
    n_failed=0
    [ -f "$file" ] || return 1
    rows=$(/usr/bin/python3 "$root/tests/support/results.py" "$kind" "$file") || return 1
    while IFS=$'\t' read -r r name detail; do
        n_results=$((n_results + 1))
        case "$r" in
            PASS) passed=$((passed + 1)) ;;
            SKIP) skip "$label: $name${detail:+ ($detail)}" ;;
            *)
                n_failed=$((n_failed + 1))
                fail "$label: $name${detail:+ ($detail)}"
                ;;
        esac
    done < <([ -n "$rows" ] && printf '%s\n' "$rows")
    return 0
}

# build_and_test NAME COMPILER [meson args...]
build_and_test() {
    local name=$1 compiler=$2
    shift 2
    local dir="$build_root/$name"
    note "build $name"
    if ! configure "$name" "$compiler" "$@"; then
        cat "$dir.setup.log"
        fail "$name: meson setup"
        return
    fi
    if ! ninja -C "$dir" -j "$jobs"; then
        fail "$name: build"
        return
    fi
    note "test $name"
    local log="$dir/meson-logs/testlog.json"
    rm -f "$log"
    meson test -C "$dir" --print-errorlogs --num-processes "$jobs" --no-rebuild
    local rc=$?
    # The testlog is the record, but meson's own exit status must agree with it: a
    # crash of meson, or a test whose end was never recorded, shows only there.
    if ! count_results "$name" meson "$log"; then
        fail "$name: meson test left no readable $log (exit status $rc)"
    elif [ "$n_results" -eq 0 ]; then
        fail "$name: meson test ran no tests (exit status $rc)"
    elif [ "$rc" -ne 0 ] && [ "$n_failed" -eq 0 ]; then
        fail "$name: meson test exited $rc but its testlog records no failed test (meson itself failed, or a test's end was not recorded)"
    fi
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
# by BOUND seconds, and add its junit results to the totals.
pytest_suite() {
    local name=$1 label=$2 suite=$3 bound=$4
    shift 4 # the rest: extra pytest arguments
    local dir="$build_root/$name"
    local xml="$dir/pytest-$label.xml"
    note "pytest $label (against $dir)"
    if [ ! -x "$dir/broker/weir-broker" ] || [ ! -x "$dir/coordinator/weir-coordinator" ]; then
        fail "pytest $label $name: weir-broker/weir-coordinator not built"
        return
    fi
    rm -f "$xml"
    # Each test is bounded too (pytest-timeout, 420 s including its fixtures): a
    # test that hangs fails alone instead of eating the whole suite's bound.
    WEIR_BUILD_DIR="$dir" PYTHONDONTWRITEBYTECODE=1 timeout -k 10 "$bound" \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider -rfEs --timeout=420 \
        --junitxml="$xml" "$@" \
        "$root/tests/$suite"
    local rc=$?
    if ! count_results "pytest $label $name" junit "$xml"; then
        fail "pytest $label $name: no readable results (exit status $rc$(pytest_status "$rc" "$bound"))"
        return
    fi
    # pytest's exit status: 0 all passed, 1 some failed; anything else means the run
    # itself went wrong, a failure even if every recorded test passed.
    case "$rc" in
        0) [ "$n_results" -gt 0 ] || fail "pytest $label $name: no tests ran" ;;
        1) [ "$n_failed" -gt 0 ] || fail "pytest $label $name: pytest exited 1 but its results record no failed test" ;;
        *) fail "pytest $label $name: exit status $rc$(pytest_status "$rc" "$bound")" ;;
    esac
}
# pytest_status RC BOUND: what pytest's (or timeout's) exit status RC means.
pytest_status() {
    case "$1" in
        2) echo ": interrupted, or errors while collecting" ;;
        3) echo ": pytest internal error" ;;
        4) echo ": pytest usage error" ;;
        5) echo ": no tests collected" ;;
        124 | 137) echo ": did not finish within $2 s" ;;
        *) echo "" ;;
    esac
}
pytest_integration() { pytest_suite "$1" integration integration 1800 "${@:2}"; }
pytest_integration normal
# The scale tests (10,000 partitions, tests/integration/test_scale.py, marker
# "scale") check time bounds that hold for an optimized build; ASan/UBSan makes
# every process 5-10x slower, so the sanitizer build deselects them (deselected
# tests are not run and not counted, unlike skips).
# The simulated-VM deployment scenario (tests/integration/test_deploy_vms.py,
# marker "vms") tests the deploy/ playbooks and an operator's add, decommission,
# replace and rolling-restart steps, not memory safety: its time bounds hold for
# the installed optimized binaries, and the broker and CLI code it drives is
# covered under the sanitizers by test_reassign*.py and tests/fault.
pytest_integration sanitize -m "not scale and not vms"

# Broker-failure scenarios (tests/fault: kill -9, SIGSTOP, rolling SIGTERM, coordinator
# restart, a network partition in namespaces) with the produce/consume checker and
# the replica log comparison, against each build. WEIR_SOAK must stay unset here: CI
# runs every scenario once (about 4 min per build is the budget; 360 s hard bound).
pytest_fault() { WEIR_SOAK='' pytest_suite "$1" fault fault 360; }
pytest_fault normal
pytest_fault sanitize

# libFuzzer: a short run of every target (tests/fuzz/fuzz_*.c), starting from its
# committed corpus.
fuzz_targets=()
for f in "$root"/tests/fuzz/fuzz_*.c; do
    [ -f "$f" ] && fuzz_targets+=("$(basename "$f" .c)")
done
if [ "$fuzz_seconds" -le 0 ]; then
    for target in "${fuzz_targets[@]}"; do
        skip "fuzz: $target (libFuzzer run not done: WEIR_FUZZ_SECONDS=$fuzz_seconds)"
    done
else
    name=fuzz
    dir="$build_root/$name"
    note "build $name (clang, libFuzzer)"
    if configure "$name" clang -Dwerror=true -Dbuildtype=debugoptimized -Dfuzzing=true \
        -Db_sanitize=address,undefined -Db_lundef=false \
        -Dc_args=-fno-sanitize-recover=all && ninja -C "$dir" -j "$jobs"; then
        for target in "${fuzz_targets[@]}"; do
            fuzzer="$dir/tests/fuzz/$target-fuzzer"
            if [ ! -x "$fuzzer" ]; then
                fail "fuzz: $target (no $fuzzer built)"
                continue
            fi
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
                fail "fuzz: $target (see $dir/$target.fuzz.log)"
            fi
            rm -rf "$work"
        done
    else
        tail -20 "$dir.setup.log" 2>/dev/null
        fail "fuzz: build"
    fi
fi

finished=1
exit 0  # summary (the EXIT trap) prints the counts and sets the exit status
