#!/usr/bin/env bash
# test.sh — the one command README and CI (.ci/run) use to check rasterstage.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh some_test_name  # extra args go to `cargo test --release`
#   scripts/test.sh -- --nocapture
#
# Steps: setup.sh (installs what is missing), services.sh (PostgreSQL, S3, env), slurm.sh,
# then cargo fmt --check, cargo clippy -D warnings, cargo test --release.
# All three cargo steps run even if an earlier one fails, so one CI run reports
# every problem at once (CI runs are few and slow); the exit status is non-zero
# if any step failed, and the last line says which.
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
# not come up, the Slurm tests say they skipped.
# shellcheck source=slurm.sh
source "$REPO_ROOT/scripts/slurm.sh" || say "Slurm did not start (see above): the Slurm tests will skip"

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
# tee keeps cargo's output live; the log gives the totals for the closing line.
run_tests() { cargo test --release "$@" 2>&1 | tee "$TEST_LOG"; return "${PIPESTATUS[0]}"; }
step tests run_tests "$@"
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

passed=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i) ~ /^passed;?$/) s += $(i - 1) } END { print s + 0 }' "$TEST_LOG")
nfailed=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i) ~ /^failed;?$/) s += $(i - 1) } END { print s + 0 }' "$TEST_LOG")
rm -f "$TEST_LOG"

echo
if ((${#failed[@]})); then
    echo "rasterstage test.sh: FAILED (${failed[*]})"
    echo "$passed passed, $nfailed failed"
    exit 1
fi
echo "rasterstage test.sh: OK (fmt, clippy and cargo test --release all passed)"
# The plain totals line, last, so that CI reads the whole run and not the final test binary.
echo "$passed passed, $nfailed failed"
