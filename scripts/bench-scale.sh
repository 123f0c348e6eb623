#!/usr/bin/env bash
# bench-scale.sh — scale-out on one machine: convert and load run as N = 1, 2, 4 shard
# processes at once (`--shard K/N`, one worker thread and one PostgreSQL connection each,
# as if each were a machine of its own) against the local S3 server (moto) and PostgreSQL
# that scripts/services.sh starts. Prints a Markdown table; docs/scale-out.md quotes it.
#
#   scripts/bench-scale.sh                 4 datasets of 8640 x 4320 Float32 -> 4320 x 2160 (average)
#   scripts/bench-scale.sh --width 4320    smaller (height = width / 2)
#   scripts/bench-scale.sh --shards "1 2 4 8" --reps 3
#
# Each N starts from nothing: a fresh S3 prefix and a fresh PostgreSQL schema. Times are
# wall-clock seconds from starting the first shard to the end of the last, the median of
# --reps repetitions; cells/s counts source cells read, rows/s rows copied into PostgreSQL.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WIDTH=8640 REPS=1 SHARDS="1 2 4" DATASETS=4
while (($#)); do
    case "$1" in
    --width) WIDTH="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    --shards) SHARDS="$2"; shift ;;
    --datasets) DATASETS="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
HEIGHT=$((WIDTH / 2))

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rasterstage-target}"
BENCH="${RASTERSTAGE_BENCH_DIR:-$HOME/.cache/rasterstage-bench}/scale"
mkdir -p "$BENCH"
log() { printf '[bench-scale] %s\n' "$*" >&2; }

# shellcheck source=scripts/services.sh
source "$REPO/scripts/services.sh"
PY="${RASTERSTAGE_PYTHON:?}"

(cd "$REPO" && nice -n 10 cargo build --release --quiet)
# A copy: the shared target directory's binary may be rebuilt by someone else mid-run.
RS="$BENCH/rasterstage"
cp "$CARGO_TARGET_DIR/release/rasterstage" "$RS"
log "binary built from $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- src Cargo.toml || echo ' + uncommitted changes under src/')"

INPUT="$BENCH/in-${WIDTH}x${HEIGHT}.tif"
if [[ ! -s "$INPUT" ]]; then
    log "making $INPUT"
    "$PY" "$REPO/scripts/bench/make_inputs.py" "$INPUT" float32 "$WIDTH" "$HEIGHT" >&2
fi
RES=$("$PY" -c "print(repr(2 * 360.0 / $WIDTH))")

BUCKET="rs-bench-scale-$$"
curl -sf -X PUT "$RASTERSTAGE_TEST_S3_ENDPOINT/$BUCKET" >/dev/null
SCHEMAS=()
cleanup_bench() {
    for s in "${SCHEMAS[@]}"; do
        psql "$DATABASE_URL" -qc "DROP SCHEMA IF EXISTS \"$s\" CASCADE" >/dev/null 2>&1 || true
    done
    "$PY" -c "
import boto3
b = boto3.resource('s3', endpoint_url='$RASTERSTAGE_TEST_S3_ENDPOINT', region_name='us-east-1').Bucket('$BUCKET')
b.objects.all().delete(); b.delete()" >/dev/null 2>&1 || true
}
_RS_CLEANUP+=("cleanup_bench")

config() { # prefix -> config path
    local cfg="$BENCH/config-$1.yml"
    {
        echo "datasets:"
        for i in $(seq 1 "$DATASETS"); do
            echo "  - {name: d$i, path: $INPUT, method: average}"
        done
        echo "resampling:"
        echo "  target_resolution: $RES"
        echo "  window_size: 512"
        echo "output:"
        echo "  uri: s3://$BUCKET/$1"
    } >"$cfg"
    echo "$cfg"
}

# Runs "$@ --shard k/N" for k = 0..N-1 at once; prints the wall-clock seconds.
shards() {
    local n="$1"
    shift
    local t0 t1 pids=() k
    t0=$(date +%s.%N)
    for ((k = 0; k < n; k++)); do
        "$RS" -q "$@" --shard "$k/$n" >/dev/null &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    t1=$(date +%s.%N)
    "$PY" -c "print(f'{$t1 - $t0:.2f}')"
}

median() { "$PY" -c "import statistics, sys; print(f'{statistics.median(map(float, sys.argv[1:])):.2f}')" "$@"; }

SRC_CELLS=$((WIDTH * HEIGHT * DATASETS))
echo "| N processes | convert s | source cells/s | load s | rows/s | tiles | rows |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for n in $SHARDS; do
    conv=() load=() rows=0 tiles=0
    for rep in $(seq 1 "$REPS"); do
        prefix="n$n-r$rep"
        cfg=$(config "$prefix")
        schema="bench_scale_$$_${n}_$rep"
        SCHEMAS+=("$schema")
        conv+=("$(shards "$n" convert --config "$cfg" -j 1)")
        load+=("$(shards "$n" load --config "$cfg" -j 1 --schema "$schema")")
        read -r tiles rows < <("$RS" inspect "s3://$BUCKET/$prefix" --json |
            "$PY" -c "import json, sys; d = json.load(sys.stdin); print(sum(x['tiles_total'] for x in d), sum(x['rows'] for x in d))")
        "$RS" -q verify --config "$cfg" --schema "$schema" >/dev/null
    done
    c=$(median "${conv[@]}") l=$(median "${load[@]}")
    "$PY" -c "print(f'| $n | $c | {$SRC_CELLS / $c / 1e6:.1f} M | $l | {$rows / $l / 1e6:.2f} M | $tiles | $rows |')"
done
log "$(nproc) cores; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
