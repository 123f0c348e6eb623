#!/usr/bin/env bash
# bench.sh — rasterstage convert against what users would pick instead, on the
# same machine in the same run; writes docs/BENCHMARKS.md ("## Machine",
# "## convert") and docs/bench-convert.png. Other sections of BENCHMARKS.md
# (for example "## load", written by scripts/bench-load.sh) are kept as they are.
#
#   scripts/bench.sh            full run: 43200 x 21600 inputs, 3 repetitions
#                               (gdalwarp -r sum once, with a 900 s timeout); 30-60 min
#   scripts/bench.sh --quick    10800 x 5400 inputs, 1 repetition, no gdalwarp -r sum;
#                               under 5 minutes; report goes to the bench dir, not docs/
#
# Options:
#   --quick          as above
#   --reps N         repetitions per case (default 3, quick 1)
#   --no-load        do not run scripts/bench-load.sh afterwards
#   --no-docs        write the report into the bench dir only (quick always does)
#   --skip REGEX     skip the cases whose "flavour|tool|case|format" matches REGEX; their
#                    rows are carried over from the previous CSV of this mode, if any,
#                    and marked as such in the report (e.g. --skip 'gdalwarp\|sum')
#   --only REGEX     run only the cases whose "flavour|tool|case|format" matches REGEX
#                    (grep -E) and replace just their rows in the last CSV of this mode;
#                    the report notes the rerun and its load
#
# Environment:
#   RASTERSTAGE_BENCH_DIR   inputs (cached), outputs, CSV (default $HOME/.cache/rasterstage-bench)
#   CARGO_TARGET_DIR        cargo target dir (default $HOME/.cache/rasterstage-target)
#   RASTERSTAGE_VENV        Python venv made by scripts/setup.sh
#
# What each case runs is printed, recorded in the CSV and in the report. Times
# are wall-clock seconds of the whole process (median of the repetitions); peak
# RSS is /usr/bin/time -v's "Maximum resident set size" (largest repetition);
# throughput is SOURCE cells (width x height, valid or not) per second; "ratio"
# is the tool's median time divided by the median time of the rasterstage case
# named in "vs" (above 1: rasterstage is faster).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

QUICK=0
REPS=""
RUN_LOAD=1
WRITE_DOCS=1
ONLY=""
SKIP=""
while (($#)); do
    case "$1" in
        --quick) QUICK=1 ;;
        --reps) REPS="$2"; shift ;;
        --no-load) RUN_LOAD=0 ;;
        --no-docs) WRITE_DOCS=0 ;;
        --only) ONLY="$2"; shift ;;
        --skip) SKIP="$2"; shift ;;
        -h | --help) sed -n '2,33p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

if ((QUICK)); then
    W=10800; H=5400; REPS="${REPS:-1}"; MODE=quick; WRITE_DOCS=0
else
    W=43200; H=21600; REPS="${REPS:-3}"; MODE=full
fi
CELLS=$((W * H))

BENCH="${RASTERSTAGE_BENCH_DIR:-$HOME/.cache/rasterstage-bench}"
VENV="${RASTERSTAGE_VENV:-$HOME/.cache/rasterstage-venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rasterstage-target}"
mkdir -p "$BENCH/inputs" "$BENCH/out" "$BENCH/logs"
CSV="$BENCH/results-$MODE.csv"
RUNS="$BENCH/runs-$MODE.csv"
META="$BENCH/machine-$MODE.env"
PREV_CSV=""
PREV_DATE=""
if [[ -n "$SKIP" && -z "$ONLY" && -f "$CSV" && -f "$META" ]]; then
    PREV_CSV="$BENCH/results-$MODE.prev.csv"
    cp "$CSV" "$PREV_CSV"
    PREV_DATE="$(grep '^date=' "$META" | cut -d= -f2)"
fi
: >"$BENCH/skipped-$MODE.txt"
if [[ -n "$ONLY" ]]; then
    [[ -f "$CSV" && -f "$META" ]] || die "--only needs a previous $MODE run ($CSV)"
    # Write this run's rows aside; they replace the matching rows at the end.
    FINAL_CSV="$CSV"; FINAL_RUNS="$RUNS"; FINAL_META="$META"
    CSV="$BENCH/results-$MODE.only.csv"; RUNS="$BENCH/runs-$MODE.only.csv"; META="$BENCH/machine-$MODE.only.env"
fi

# ---------------------------------------------------------------------------
# 1. Tools: Debian packages + venv (setup.sh is idempotent), release binary
# ---------------------------------------------------------------------------
log "setup: Debian packages and the Python venv (scripts/setup.sh)"
bash "$REPO/scripts/setup.sh" >"$BENCH/logs/setup.log" 2>&1 || {
    tail -n 30 "$BENCH/logs/setup.log" >&2; die "scripts/setup.sh failed"
}
PY="$VENV/bin/python"
"$PY" -c 'import rasterio, rioxarray, xarray, dask, zarr, numpy, matplotlib' ||
    die "the venv $VENV lacks a benchmark package: rerun scripts/setup.sh"
[[ -x /usr/bin/time ]] || die "/usr/bin/time missing (Debian package time)"
for t in gdalwarp gdalinfo; do command -v "$t" >/dev/null || die "$t missing (gdal-bin)"; done

log "building the release binary (cargo build --release, target $CARGO_TARGET_DIR)"
cargo build --release --quiet || die "cargo build --release failed"
[[ -x "$CARGO_TARGET_DIR/release/rasterstage" ]] || die "no binary at $CARGO_TARGET_DIR/release/rasterstage"
# Benchmark a private copy: a build in the shared target dir during the run (tests,
# another worktree) must not swap the binary between repetitions.
mkdir -p "$BENCH/bin"
RS="$BENCH/bin/rasterstage"
cp "$CARGO_TARGET_DIR/release/rasterstage" "$RS.tmp" && mv "$RS.tmp" "$RS"

# ---------------------------------------------------------------------------
# 2. Inputs, made once and cached (regenerated when make_inputs.py changes)
# ---------------------------------------------------------------------------
GEN="$REPO/scripts/bench/make_inputs.py"
GEN_SUM="$(sha256sum "$GEN" | cut -c1-12)"
input_path() { echo "$BENCH/inputs/global30s_$1_${W}x${H}.tif"; }
for flavour in byte float32; do
    f="$(input_path "$flavour")"
    if [[ -f "$f" && "$(cat "$f.stamp" 2>/dev/null)" == "$GEN_SUM" ]]; then
        log "input $f: cached"
    else
        log "making input $f ($W x $H, $flavour), window by window"
        rm -f "$f" "$f.stamp"
        "$PY" "$GEN" "$f" "$flavour" "$W" "$H" >&2
        echo "$GEN_SUM" >"$f.stamp"
    fi
done
BYTE="$(input_path byte)"
F32="$(input_path float32)"
# Warm the page cache so that no tool pays the first read from disk.
cat "$BYTE" "$F32" >/dev/null

# ---------------------------------------------------------------------------
# 3. Machine facts (load at the start; the end is added after the runs)
# ---------------------------------------------------------------------------
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cores=$(nproc)"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "ram_gib=$(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo)"
    echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "gdal=$(gdalinfo --version)"
    echo "rasterio_gdal=$("$PY" -c 'import rasterio; print(rasterio.__version__, "with GDAL", rasterio.__gdal_version__)')"
    echo "pylibs=$("$PY" -c 'import numpy, xarray, rioxarray, dask, zarr; print(f"numpy {numpy.__version__}, xarray {xarray.__version__}, rioxarray {rioxarray.__version__}, dask {dask.__version__}, zarr {zarr.__version__}")')"
    echo "rustc=$(rustc --version)"
    echo "commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo ' (+ uncommitted changes in src/)')"
    echo "binary_sha256=$(sha256sum "$RS" | cut -c1-12)"
    echo "src_diff_sha256=$(git -C "$REPO" diff HEAD -- src Cargo.toml Cargo.lock 2>/dev/null | sha256sum | cut -c1-12)"
    echo "size=${W}x${H}"
    echo "cells=$CELLS"
    echo "reps=$REPS"
    echo "mode=$MODE"
    echo "input_byte_mb=$(du -m "$BYTE" | cut -f1)"
    echo "input_float32_mb=$(du -m "$F32" | cut -f1)"
    echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$META"
log "machine: $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------------------
# 4. Cases
# ---------------------------------------------------------------------------
echo "flavour,tool,case,format,rep,status,seconds,peak_rss_kb,load1,cpu_s" >"$RUNS"
echo "flavour,tool,case,format,vs,reps,status,median_s,min_s,max_s,cells,peak_rss_mb,command,cpu_s" >"$CSV"

# A printable command: paths shortened to $BENCH / rasterstage.
show_cmd() {
    local s
    s="$(printf '%q ' "$@")"
    s="${s% }"
    s="${s//$RS/rasterstage}"
    s="${s//$BENCH/\$BENCH}"
    s="${s//$REPO\//}"
    s="${s//$PY/python}"
    printf '%s' "$s"
}

# run_case FLAVOUR TOOL CASE FORMAT VS REPS TIMEOUT OUTPATH -- ENV... -- CMD...
#   VS:      the "tool|case|format" of the rasterstage row to compare with ("" = none)
#   OUTPATH: removed before each repetition (resume must not skip work)
#   ENV:     NAME=VALUE settings; GDAL_CACHEMAX is unset unless given here
run_case() {
    local flavour="$1" tool="$2" kase="$3" fmt="$4" vs="$5" reps="$6" tmo="$7" out="$8"
    shift 8
    [[ "$1" == -- ]] || die "run_case: expected --"
    shift
    local -a envs=()
    while [[ "$1" != -- ]]; do envs+=("$1"); shift; done
    shift
    local -a cmd=("$@")
    if [[ -n "$ONLY" ]] && ! grep -qE -- "$ONLY" <<<"$flavour|$tool|$kase|$fmt"; then
        return 0
    fi
    if [[ -n "$SKIP" ]] && grep -qE -- "$SKIP" <<<"$flavour|$tool|$kase|$fmt"; then
        log "$flavour | $tool | $kase -> $fmt: skipped (--skip)"
        printf '%s|%s|%s|%s\n' "$flavour" "$tool" "$kase" "$fmt" >>"$BENCH/skipped-$MODE.txt"
        return 0
    fi
    local shown
    shown="$( ((${#envs[@]})) && printf '%s ' "${envs[@]}")$(show_cmd "${cmd[@]}")"
    log "$flavour | $tool | $kase -> $fmt  (x$reps)"
    log "  \$ $shown"
    local -a times=() rss=() cpus=()
    local status=ok rep rc t0 t1 secs kb tfile lfile load1 cpu
    for ((rep = 1; rep <= reps; rep++)); do
        rm -rf "$out"
        sync
        tfile="$BENCH/logs/time.txt"
        lfile="$BENCH/logs/$flavour-${tool// /_}-${kase// /_}-$fmt-$rep.log"
        lfile="${lfile//[^A-Za-z0-9_.\/-]/_}"
        load1=$(cut -d' ' -f1 /proc/loadavg)
        t0=$(date +%s.%N)
        rc=0
        env -u GDAL_CACHEMAX "${envs[@]}" timeout "$tmo" \
            /usr/bin/time -v -o "$tfile" "${cmd[@]}" >"$lfile" 2>&1 || rc=$?
        t1=$(date +%s.%N)
        secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
        kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$tfile" 2>/dev/null || true)
        kb="${kb:-0}"
        # CPU seconds (user + system) of the process and its children: unlike wall time,
        # it hardly changes when other processes compete for the cores.
        cpu=$(awk -F: '/User time \(seconds\)|System time \(seconds\)/ {s += $2} END {printf "%.2f", s}' "$tfile" 2>/dev/null || echo "")
        if ((rc == 124)); then
            status="timeout"
            log "  rep $rep: TIMEOUT after $tmo s"
            echo "$flavour,\"$tool\",\"$kase\",$fmt,$rep,timeout,$secs,$kb,$load1,$cpu" >>"$RUNS"
            break
        elif ((rc != 0)); then
            status="failed"
            log "  rep $rep: FAILED (exit $rc); last lines of $lfile:"
            tail -n 5 "$lfile" >&2
            echo "$flavour,\"$tool\",\"$kase\",$fmt,$rep,failed,$secs,$kb,$load1,$cpu" >>"$RUNS"
            break
        fi
        log "  rep $rep: $secs s (CPU $cpu s), peak RSS $((kb / 1024)) MB (load average before: $load1)"
        echo "$flavour,\"$tool\",\"$kase\",$fmt,$rep,ok,$secs,$kb,$load1,$cpu" >>"$RUNS"
        times+=("$secs")
        cpus+=("$cpu")
        rss+=("$kb")
    done
    rm -rf "$out"
    local med="" mn="" mx="" peak="" cmed=""
    if ((${#times[@]})); then
        med=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}')
        mn=$(printf '%s\n' "${times[@]}" | sort -g | head -n1)
        mx=$(printf '%s\n' "${times[@]}" | sort -g | tail -n1)
        peak=$(printf '%s\n' "${rss[@]}" | sort -g | tail -n1)
        cmed=$(printf '%s\n' "${cpus[@]}" | sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}')
        peak=$(awk -v k="$peak" 'BEGIN {printf "%.0f", k / 1024}')
    elif [[ "$status" == timeout ]]; then
        med="$tmo"
    fi
    # CSV: text fields quoted (tool names contain commas); no field contains a double quote.
    echo "$flavour,\"$tool\",\"$kase\",$fmt,\"$vs\",${#times[@]},$status,$med,$mn,$mx,$CELLS,$peak,\"${shown//\"/\'}\",$cmed" >>"$CSV"
}

OUT="$BENCH/out"
R05=0.05
R1M=0.016666666666667
RS_NAME=bench

# rasterstage: default settings (threads = cores, window 1024, its own 64 MB GDAL cache).
rs_case() { # FLAVOUR SRC CASE FORMAT METHOD|"" RES|""
    local flavour="$1" src="$2" kase="$3" fmt="$4" method="$5" res="$6"
    local -a a=(convert "$src" --name "$RS_NAME" --out "$OUT/rs" --format "$fmt" -q)
    [[ -n "$res" ]] && a+=(--resolution "$res")
    [[ -n "$method" ]] && a+=(--method "$method")
    run_case "$flavour" rasterstage "$kase" "$fmt" "" "$REPS" 3600 "$OUT/rs" -- -- "$RS" "${a[@]}"
}

gdalwarp_case() { # FLAVOUR SRC TOOLNAME CASE VS REPS TIMEOUT RES METHOD [ENV/extra...]
    local flavour="$1" src="$2" tool="$3" kase="$4" vs="$5" reps="$6" tmo="$7" res="$8" method="$9"
    shift 9
    local -a envs=() extra=()
    if [[ "${1:-}" == bounded ]]; then
        extra=(--config GDAL_CACHEMAX 64 -wm 64)
    fi
    run_case "$flavour" "$tool" "$kase" GTiff "$vs" "$reps" "$tmo" "$OUT/gw.tif" -- "${envs[@]}" -- \
        gdalwarp -q -overwrite -multi -wo NUM_THREADS=ALL_CPUS -r "$method" -tr "$res" "$res" -tap \
        "${extra[@]}" -co TILED=YES -co COMPRESS=DEFLATE "$src" "$OUT/gw.tif"
}

SECONDS=0
for flavour in byte float32; do
    if [[ $flavour == byte ]]; then src="$BYTE"; else src="$F32"; fi
    log "===== $flavour input: $src ($W x $H = $CELLS cells)"

    # -- rasterstage: sum, average and (Byte only: the mode of a continuous Float32 field is
    # meaningless) mode to 0.05° and to 1', and passthrough, to Parquet and to Zarr
    methods=(average sum)
    [[ $flavour == byte ]] && methods+=(mode)
    for fmt in parquet zarr; do
        for res in 0.05 1m; do
            for method in "${methods[@]}"; do
                if [[ $res == 0.05 ]]; then
                    rs_case "$flavour" "$src" "$method 0.05°" "$fmt" "$method" "$R05"
                else
                    rs_case "$flavour" "$src" "$method 1'" "$fmt" "$method" "$R1M"
                fi
            done
        done
        rs_case "$flavour" "$src" "passthrough" "$fmt" "" ""
    done

    # -- the floor: read every block, nothing else (1 thread, GDAL_CACHEMAX=64)
    run_case "$flavour" "read floor: rasterio block_windows" "read every block" - "rasterstage|average 0.05°|parquet" \
        "$REPS" 600 "$OUT/none" -- GDAL_CACHEMAX=64 -- "$PY" "$REPO/scripts/bench/read_floor.py" "$src"
    # gdalinfo -checksum reads scanlines: its cache must hold one row of 512x512 blocks
    # (88 MB for the full Float32 input) or it decodes every block 512 times.
    if [[ $flavour == byte ]]; then bpc=1; else bpc=4; fi
    ck_mb=$(( (W * 512 * bpc / 1048576 + 1) * 5 / 4 ))
    ((ck_mb < 64)) && ck_mb=64
    run_case "$flavour" "read floor: gdalinfo -checksum (GDAL 3.6)" "read every block" - "rasterstage|average 0.05°|parquet" \
        "$REPS" 600 "$OUT/none" -- -- gdalinfo -checksum --config GDAL_CACHEMAX "$ck_mb" "$src"

    # -- gdalwarp (Debian's GDAL 3.6)
    gdalwarp_case "$flavour" "$src" "gdalwarp" "average 0.05°" "rasterstage|average 0.05°|parquet" "$REPS" 1800 "$R05" average
    gdalwarp_case "$flavour" "$src" "gdalwarp, GDAL_CACHEMAX 64 -wm 64" "average 0.05°" "rasterstage|average 0.05°|parquet" "$REPS" 1800 "$R05" average bounded
    if [[ $flavour == byte ]]; then
        gdalwarp_case "$flavour" "$src" "gdalwarp" "average 1'" "rasterstage|average 1'|parquet" "$REPS" 1800 "$R1M" average
        gdalwarp_case "$flavour" "$src" "gdalwarp" "mode 0.05°" "rasterstage|mode 0.05°|parquet" "$REPS" 1800 "$R05" mode
        gdalwarp_case "$flavour" "$src" "gdalwarp" "mode 1'" "rasterstage|mode 1'|parquet" "$REPS" 1800 "$R1M" mode
        if ((QUICK == 0)); then
            # GDAL 3.6's sum is extremely slow (210-440 s here at 0.05°): once, with a timeout.
            gdalwarp_case "$flavour" "$src" "gdalwarp" "sum 0.05°" "rasterstage|sum 0.05°|parquet" 1 900 "$R05" sum
            gdalwarp_case "$flavour" "$src" "gdalwarp" "sum 1'" "rasterstage|sum 1'|parquet" 1 900 "$R1M" sum
        fi
    fi

    # -- Python: the original pipeline's approach, and rioxarray + dask
    run_case "$flavour" "rasterio + numpy block mean" "average 0.05°" GTiff "rasterstage|average 0.05°|parquet" \
        "$REPS" 1800 "$OUT/rb.tif" -- -- "$PY" "$REPO/scripts/bench/rasterio_blockmean.py" "$src" "$OUT/rb.tif" 6
    run_case "$flavour" "rioxarray + dask coarsen" "average 0.05°" zarr "rasterstage|average 0.05°|zarr" \
        "$REPS" 1800 "$OUT/xc.zarr" -- -- "$PY" "$REPO/scripts/bench/xarray_coarsen.py" "$src" "$OUT/xc.zarr" 6
done
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$META"
echo "bench_seconds=$SECONDS" >>"$META"
log "all cases done in $SECONDS s; load average now $(cut -d' ' -f1-3 /proc/loadavg)"

if [[ -n "$PREV_CSV" && -s "$BENCH/skipped-$MODE.txt" ]]; then
    # Carry the skipped cases' rows over from the previous run, marked with its date.
    "$PY" - "$PREV_CSV" "$CSV" "$BENCH/skipped-$MODE.txt" "$PREV_DATE" <<'PYCARRY'
import csv, sys
prev, cur, skipped, date = sys.argv[1:5]
keys = {tuple(l.rstrip("\n").split("|")) for l in open(skipped) if l.strip()}
old = list(csv.DictReader(open(prev, newline="")))
rows = list(csv.DictReader(open(cur, newline="")))
carried = [dict(r, carried_from=date) for r in old
           if (r["flavour"], r["tool"], r["case"], r["format"]) in keys]
fields = list(dict.fromkeys([*(rows[0].keys() if rows else old[0].keys()), "carried_from"]))
with open(cur, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows + carried)
print(f"carried over {len(carried)} row(s) from the run of {date}", file=sys.stderr)
PYCARRY
fi

if [[ -n "$ONLY" ]]; then
    "$PY" - "$FINAL_CSV" "$CSV" "$FINAL_RUNS" "$RUNS" <<'PYMERGE'
import csv, sys
for final, new in ((sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])):
    rd = lambda p: list(csv.DictReader(open(p, newline="")))
    old, add = rd(final), rd(new)
    key = lambda r: (r["flavour"], r["tool"], r["case"], r["format"])
    fresh = {key(r) for r in add}
    rows, placed = [], set()
    for r in old:
        if key(r) in fresh:
            if key(r) not in placed:
                rows.extend(a for a in add if key(a) == key(r))
                placed.add(key(r))
        else:
            rows.append(r)
    rows.extend(a for a in add if key(a) not in placed)
    fields = list(dict.fromkeys([*(old[0].keys() if old else []), *(add[0].keys() if add else [])]))
    with open(final, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, quoting=csv.QUOTE_MINIMAL, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
PYMERGE
    {
        echo "rerun=$(grep '^date=' "$META" | cut -d= -f2): cases matching '$ONLY' rerun, load average $(grep '^load_start=' "$META" | cut -d= -f2) at the start, $(grep '^load_end=' "$META" | cut -d= -f2) at the end; binary sha256 $(grep '^binary_sha256=' "$META" | cut -d= -f2)"
    } >>"$FINAL_META"
    CSV="$FINAL_CSV"; RUNS="$FINAL_RUNS"; META="$FINAL_META"
fi

# ---------------------------------------------------------------------------
# 5. Report: docs/BENCHMARKS.md (Machine + convert sections) and the plot
# ---------------------------------------------------------------------------
if ((WRITE_DOCS)); then
    DOC="$REPO/docs/BENCHMARKS.md"; PNG="$REPO/docs/bench-convert.png"
else
    DOC="$BENCH/BENCHMARKS-$MODE.md"; PNG="$BENCH/bench-convert-$MODE.png"
fi
mkdir -p "$(dirname "$DOC")"
"$PY" "$REPO/scripts/bench/report.py" --csv "$CSV" --runs "$RUNS" --meta "$META" \
    --doc "$DOC" --png "$PNG"
log "report: $DOC, plot: $PNG, CSV: $CSV"

# ---------------------------------------------------------------------------
# 6. The load benchmark, if there is one
# ---------------------------------------------------------------------------
if ((RUN_LOAD)) && [[ -f "$REPO/scripts/bench-load.sh" ]]; then
    load_args=()
    ((QUICK)) && load_args+=(--quick)
    ((WRITE_DOCS)) || load_args+=(--no-docs)
    log "running scripts/bench-load.sh ${load_args[*]}"
    bash "$REPO/scripts/bench-load.sh" "${load_args[@]}"
fi
