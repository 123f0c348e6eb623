#!/usr/bin/env bash
# bench-zarr-shard.sh — sharded (--zarr-shard K) against unsharded Zarr v3 on scripts/bench.sh's
# byte raster: objects written and wall time, in interleaved pairs (unsharded, sharded,
# unsharded, ...), so both see the same machine load. Prints a Markdown table for
# docs/BENCHMARKS.md ("## Sharded Zarr").
#
#   scripts/bench-zarr-shard.sh [PAIRS]      default 5 pairs per case
#
# Environment:
#   RASTERSTAGE_BENCH_DIR   inputs (shared with bench.sh), outputs (default $HOME/.cache/rasterstage-bench)
#   CARGO_TARGET_DIR        where the release binary is (default $HOME/.cache/rasterstage-target)
#   RASTERSTAGE_VENV        Python venv made by scripts/setup.sh (makes the input)
#   BENCH_INPUT             use this raster instead of making bench.sh's 43200 x 21600 byte input
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PAIRS="${1:-5}"
BENCH="${RASTERSTAGE_BENCH_DIR:-$HOME/.cache/rasterstage-bench}"
VENV="${RASTERSTAGE_VENV:-$HOME/.cache/rasterstage-venv}"
RS="${CARGO_TARGET_DIR:-$HOME/.cache/rasterstage-target}/release/rasterstage"
OUT="$BENCH/out/zarr-shard"
mkdir -p "$BENCH/inputs" "$OUT"
[[ -x "$RS" ]] || { echo "no release binary at $RS: cargo build --release first" >&2; exit 1; }

INPUT="${BENCH_INPUT:-$BENCH/inputs/global30s_byte_43200x21600.tif}"
if [[ ! -f "$INPUT" ]]; then
    echo "making $INPUT (scripts/bench/make_inputs.py)" >&2
    "$VENV/bin/python" "$REPO/scripts/bench/make_inputs.py" "$INPUT" byte 43200 21600 >&2
fi
cat "$INPUT" >/dev/null

# One run: prints "seconds objects peak_rss_mb cpu_seconds" (cpu: user + system).
run() {
    local dir="$1"
    shift
    rm -rf "$dir"
    local t0 t1 rss
    t0=$(date +%s.%N)
    /usr/bin/time -f '%M %U %S' -o "$dir.rss" "$RS" -q convert "$INPUT" --name g --out "$dir" --format zarr "$@" >/dev/null
    t1=$(date +%s.%N)
    read -r kb user sys <"$dir.rss"
    echo "$(echo "$t1 - $t0" | bc) $(find "$dir" -type f | wc -l) $((kb / 1024)) $(echo "$user + $sys" | bc)"
}

# Median and min-max of a column of numbers.
stats() { sort -g | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.2f (%.2f-%.2f)", m, a[1], a[NR]}'; }

echo "| case | layout | objects | median s (min-max) | CPU s (min-max) | peak RSS MB |"
echo "|---|---|---:|---:|---:|---:|"
# case label | convert flags | shard K
CASES=(
    "passthrough, window 256|--window 256|16"
    "average 1', window 256|--window 256 --resolution 0.016666666666666666 --method average|16"
)
for c in "${CASES[@]}"; do
    IFS='|' read -r label flags k <<<"$c"
    read -ra f <<<"$flags"
    : >"$OUT/un.txt"
    : >"$OUT/sh.txt"
    for _ in $(seq "$PAIRS"); do
        run "$OUT/un" "${f[@]}" >>"$OUT/un.txt"
        run "$OUT/sh" "${f[@]}" --zarr-shard "$k" >>"$OUT/sh.txt"
    done
    for layout in un sh; do
        name="unsharded"
        [[ $layout == sh ]] && name="--zarr-shard $k"
        objects=$(cut -d' ' -f2 "$OUT/$layout.txt" | sort -u | tr '\n' ' ')
        secs=$(cut -d' ' -f1 "$OUT/$layout.txt" | stats)
        rss=$(cut -d' ' -f3 "$OUT/$layout.txt" | sort -g | tail -1)
        cpu=$(cut -d' ' -f4 "$OUT/$layout.txt" | stats)
        echo "| $label | $name | $objects| $secs | $cpu | $rss |"
    done
done
rm -rf "$OUT/un" "$OUT/sh"
echo
echo "command: rasterstage -q convert $(basename "$INPUT") --name g --out DIR --format zarr FLAGS [--zarr-shard K]; $PAIRS interleaved pairs; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
