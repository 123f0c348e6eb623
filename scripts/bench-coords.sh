#!/usr/bin/env bash
# bench-coords.sh — `load --coords view` against the default load, and the primary key
# build with and without a larger maintenance_work_mem, in interleaved pairs on one server.
#
#   scripts/bench-coords.sh STAGING_ROOT [PAIRS]     (default 5 pairs)
#   BIN_A=old BIN_B=new scripts/bench-coords.sh ...   pairs of default loads, binary A then B
#                                                     (part A only; mode column: a / b)
#
# A. Per pair: the default load, then `load --coords view`, each into a fresh schema (dropped,
#    CHECKPOINT before each), --jobs $(nproc). Reported per run: wall s, client CPU s, the
#    seconds from the "building the primary key" log line to the end (primary key + ANALYZE
#    + catalogue row), and the table's size (pg_total_relation_size, with the primary key).
# B. Per pair, on the default table of A: DROP the key, ADD PRIMARY KEY with the server's
#    maintenance_work_mem, then with 512MB (SET in that session), timed by psql.
# Prints TSV lines and the load average at start and end; medians are left to the reader.
set -euo pipefail
ROOT="$1" PAIRS="${2:-5}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${RASTERSTAGE_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/rasterstage-target}/release/rasterstage}"
: "${DATABASE_URL:?source scripts/services.sh first}"
q() { psql "$DATABASE_URL" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
echo "# start $(date -u +%H:%M:%S) loadavg $(cut -d' ' -f1-3 /proc/loadavg) repo $(git -C "$REPO" rev-parse --short HEAD)"
echo -e "pair\tmode\twall_s\tclient_cpu_s\tkey_analyze_s\ttable_bytes\trows"
one() { # pair mode [extra flags]
    local pair=$1 mode=$2; shift 2
    local sc="bench_coords_$mode"
    q "DROP SCHEMA IF EXISTS $sc CASCADE" ; q "CHECKPOINT"; sync
    local log; log=$(mktemp)
    local t0; t0=$(date +%s.%N)
    local bin=$BIN
    [[ $mode == a ]] && bin=$BIN_A
    [[ $mode == b ]] && bin=$BIN_B
    RUST_LOG=rasterstage=info /usr/bin/time -f "%U %S" -o "$log.time" \
        "$bin" load --from "$ROOT" --schema "$sc" -q --jobs "$(nproc)" "$@" >"$log.out" 2>"$log"
    local t1; t1=$(date +%s.%N)
    local pk_line; pk_line=$(grep -m1 "building the primary key" "$log" | cut -d' ' -f1)
    local pk_t; pk_t=$(date -d "$pk_line" +%s.%N)
    local data=bench; [[ $mode == view ]] && data=bench__cells
    local bytes; bytes=$(q "SELECT pg_total_relation_size('$sc.$data')")
    local rows; rows=$(q "SELECT count(*) FROM $sc.bench")
    echo -e "$pair\t$mode\t$(echo "$t1 - $t0" | bc)\t$(awk '{print $1+$2}' "$log.time")\t$(echo "$t1 - $pk_t" | bc)\t$bytes\t$rows"
    rm -f "$log" "$log.time" "$log.out"
}
if [[ -n ${BIN_A:-} ]]; then
    for i in $(seq 1 "$PAIRS"); do
        one "$i" a
        one "$i" b
    done
    q "DROP SCHEMA IF EXISTS bench_coords_a CASCADE"; q "DROP SCHEMA IF EXISTS bench_coords_b CASCADE"
    exit 0
fi
for i in $(seq 1 "$PAIRS"); do
    one "$i" stored
    one "$i" view --coords view
done
echo "# A done $(date -u +%H:%M:%S) loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
echo -e "pair\tmaintenance_work_mem\tadd_primary_key_ms"
pk() { # pair mwm
    q "ALTER TABLE bench_coords_stored.bench DROP CONSTRAINT IF EXISTS bench_pkey"; q "CHECKPOINT"
    local sets=""; [[ $2 != server ]] && sets="SET maintenance_work_mem = '$2';"
    local ms; ms=$(psql "$DATABASE_URL" -qAtX -v ON_ERROR_STOP=1 -c "$sets" -c '\timing on' \
        -c "ALTER TABLE bench_coords_stored.bench ADD PRIMARY KEY (row_idx, col_idx)" | grep -o 'Time: [0-9.]*' | cut -d' ' -f2)
    echo -e "$1\t$2\t$ms"
}
for i in $(seq 1 "$PAIRS"); do
    pk "$i" server
    pk "$i" 512MB
done
echo "# end $(date -u +%H:%M:%S) loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
q "DROP SCHEMA IF EXISTS bench_coords_stored CASCADE"; q "DROP SCHEMA IF EXISTS bench_coords_view CASCADE"
