#!/usr/bin/env bash
# test.sh — the one command README and CI (.ci/run) use to check rasterstage.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh some_test_name  # extra args go to `cargo nextest run --release`
#   scripts/test.sh -- --nocapture
#
# Steps: setup.sh (installs what is missing), services.sh (PostgreSQL, S3, env), slurm.sh,
# then cargo fmt --check, cargo clippy -D warnings, the tests (cargo nextest: one process
# and one timed line per test, the slowest listed at the end; then the doc-tests, which
# nextest does not run), and with no arguments the tiers check and the demo.
# Every step runs even if an earlier one fails, so one CI run reports every problem at
# once (CI runs are few and slow); the exit status is non-zero if any step failed, and
# the last line says which.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

# Keep the build outside the clone: CI works in a fresh clone each time, and a
# cold release build of gdal + arrow/parquet + object_store takes ~8 minutes on
# 2 cores; a shared target dir under $HOME/.cache lets later runs reuse it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rasterstage-target}"
mkdir -p "$CARGO_TARGET_DIR"

say() { printf '\n==> %s\n' "$*" >&2; }

say "setup (scripts/setup.sh)"
bash "$REPO_ROOT/scripts/setup.sh"

say "services (scripts/services.sh)"
# Sourced, so its exports (DATABASE_URL, S3 endpoint, …) reach cargo, and its
# EXIT trap stops the services when this script ends, however it ends.
# shellcheck source=services.sh
source "$REPO_ROOT/scripts/services.sh"
# A one-node Slurm cluster for tests/it/slurm.rs, stopped by the same EXIT trap; if it does
# not come up, the Slurm tests fail (RASTERSTAGE_REQUIRE_SERVICES below), naming it.
# shellcheck source=slurm.sh
source "$REPO_ROOT/scripts/slurm.sh" || say "Slurm did not start (see above): the Slurm tests will fail"

failed=()
# Run one step, time it, remember failure instead of exiting (see header).
step() {
    local name="$1"
    shift
    say "$name: $*"
    local t0=$SECONDS
    local rc=0
    "$@" || rc=$?
    if ((rc == 0)); then
        printf '==> %s: ok (%ss)\n' "$name" "$((SECONDS - t0))" >&2
    else
        printf '==> %s: FAILED with status %s (%ss)\n' "$name" "$rc" "$((SECONDS - t0))" >&2
        failed+=("$name")
    fi
}

step fmt cargo fmt --all -- --check
step clippy cargo clippy --all-targets -- -D warnings
# --release: the tests convert real rasters; debug builds of the GDAL/arrow
# paths are many times slower than the release build, and the build is shared.
TEST_LOG="$(mktemp)"
DOC_LOG="$(mktemp)"
# Here every service is up: a test that would skip for want of one fails instead
# (tests/it/common.rs, `require`), so a broken setup cannot pass as a run of skips.
export RASTERSTAGE_REQUIRE_SERVICES=1
# tee keeps the output live; the log gives the slowest tests and the closing totals.
run_tests() {
    cargo nextest run --release --no-fail-fast "$@" 2>&1 | tee "$TEST_LOG"
    local rc=${PIPESTATUS[0]}
    # Per-test times, slowest first: where the suite's time goes. (A failure is listed twice
    # by nextest, when it happens and in the closing summary.)
    printf '\n==> slowest tests:\n' >&2
    sed -nE 's/^ *(PASS|FAIL|TIMEOUT|SIG[A-Z]+) \[ *([0-9.]+)s\] (\([ 0-9]+\/[0-9]+\) )?(.*)$/\2 \4/p' "$TEST_LOG" |
        sort -rn | awk '!seen[$0]++' | head -n 10 | awk '{ printf "%9.1fs  %s %s\n", $1, $2, $3 }' >&2
    # nextest does not run doc-tests.
    cargo test --release --doc "$@" 2>&1 | tee "$DOC_LOG"
    local doc_rc=${PIPESTATUS[0]}
    return $((rc ? rc : doc_rc))
}
step tests run_tests "$@"
# The first tier, as a machine with only Rust and GDAL runs it: no PostgreSQL, S3 or Python
# settings (an empty environment but for the toolchain), and no RASTERSTAGE_REQUIRE_SERVICES.
# `cargo test` must pass, the tests that need a service saying `skipped <test>: needs ...`.
# Plain cargo test, so the threads-in-one-process harness is exercised too.
tiers_without_services() {
    local log rc=0
    log="$(mktemp)"
    env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 \
        CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" \
        CARGO_TARGET_DIR="$CARGO_TARGET_DIR" cargo test --release >"$log" 2>&1 || rc=$?
    grep '^test result:' "$log" >&2 || true
    grep '^skipped ' "$log" | head -n 3 >&2 || true
    local skipped
    skipped=$(grep -c '^skipped ' "$log" || true)
    echo "$skipped tests skipped for want of a service" >&2
    if ((rc != 0)); then
        grep -E '^(---- |failures:|test .* FAILED)' "$log" | head -n 40 >&2
    elif ((skipped == 0)); then
        echo "no test said it skipped: the tiers check did not remove the services" >&2
        rc=1
    fi
    rm -f "$log"
    return "$rc"
}
# Only with the whole suite, as the demo.
if (($# == 0)); then step tiers tiers_without_services; fi
# The README's first command, as a new user runs it: an empty home (no venv, no pip cache, no
# PostgreSQL or S3 settings inherited from this script), only the compiler and its build cache
# shared. It must install and start what it needs and end with the query's rows.
demo_fresh_home() {
    local home schema log pyenv_root rc=0
    # pyenv's shims (python3 on PATH) find their versions under $PYENV_ROOT, else ~/.pyenv:
    # name the real one, or python3 is not found from the empty home.
    pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
    [[ -d $pyenv_root ]] || pyenv_root=""
    home="$(mktemp -d)"
    schema="demo_ci_$$"
    log="$home/demo.log"
    env -i PATH="$PATH" HOME="$home" LANG=C.UTF-8 \
        CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" \
        ${pyenv_root:+PYENV_ROOT="$pyenv_root"} CARGO_TARGET_DIR="$CARGO_TARGET_DIR" \
        RASTERSTAGE_DEMO_SCHEMA="$schema" bash scripts/demo.sh >"$log" 2>&1 || rc=$?
    tail -n 25 "$log"
    psql "$DATABASE_URL" -q -c "DROP SCHEMA IF EXISTS \"$schema\" CASCADE" >/dev/null 2>&1 || true
    if ((rc == 0)) && ! grep -q '^(5 rows)$' "$log"; then
        echo "demo.sh exited 0 without printing the query's 5 rows" >&2
        rc=1
    fi
    rm -rf "$home"
    return "$rc"
}
# Only with the whole suite: `test.sh some_filter` is for a quick look at some tests.
if (($# == 0)); then step demo demo_fresh_home; fi

# Totals of nextest's summary ("N tests run: P passed (S slow), F failed, ...") and the
# doc-tests' "test result:" line.
count() {
    { grep -E '^ *Summary \[' "$TEST_LOG" || true; grep '^test result:' "$DOC_LOG" || true; } |
        awk -v what="$1" '{ for (i = 2; i <= NF; i++) if ($(i) ~ "^" what "[;,]?$") s += $(i - 1) } END { print s + 0 }'
}
passed=$(count passed)
nfailed=$(count failed)
rm -f "$TEST_LOG" "$DOC_LOG"

echo
if ((${#failed[@]})); then
    echo "rasterstage test.sh: FAILED (${failed[*]})"
    echo "$passed passed, $nfailed failed"
    exit 1
fi
echo "rasterstage test.sh: OK (fmt, clippy and the tests all passed)"
# The plain totals line, last, so that CI reads the whole run and not the final test binary.
echo "$passed passed, $nfailed failed"
