#!/usr/bin/env bash
# bench-growth.sh — how cost grows: the same cases on global rasters of 1x, 2x and 4x the
# cells (same extent -180..180 x -90..90, widths W, W*sqrt(2) rounded to even, 2W; height =
# width / 2), each measured for wall seconds, CPU seconds (user + system) and peak RSS.
# Time should grow linearly with the cells and peak RSS stay flat. Writes the section
# "## How cost grows" of docs/BENCHMARKS.md (every other section is kept as it is).
#
# Cases, at each size:
#   sum → parquet, sum → zarr    the Byte GLOBE-like raster (ocean = nodata, make_inputs.py
#                                byte), --method sum to 4x the source cell size (output cells
#                                grow with the input cells)
#   passthrough → parquet, passthrough → zarr
#                                a dense Float32 raster (every cell valid, make_inputs.py
#                                float32-dense): one row per cell
#   Parquet floor                examples/parquet_floor.rs: the tiles of passthrough → parquet,
#                                byte for byte (checked on the first repetition), written by
#                                rasterstage's own plan/writer/store from the raw cells in
#                                memory: no GeoTIFF decoding, no commit records, no manifest.
#                                Run right before or after passthrough → parquet (alternating);
#                                rasterstage / floor is the median of those pairs
#   load                         rasterstage load of the sum → parquet output (default table,
#                                primary key, ANALYZE, --jobs 2) into a schema of this run
#
#   scripts/bench-growth.sh                W = 21600 (4x = 43200 x 21600, the 30" grid), 3 reps
#   scripts/bench-growth.sh --quick        W = 2700, 1 repetition, report in the bench dir only
#
# At full size the inputs take about 9 GB (6.5 GB of it the raw Float32 copies the floor
# reads), made once in a few minutes; the outputs up to 5 GB at a time; a run of 3
# repetitions about half an hour on 2 quiet cores, most of it the loads.
#
# Options: --width W   --reps N (default 3; quick 1)   --no-docs   -h
# Environment: RASTERSTAGE_BENCH_DIR (default $HOME/.cache/rasterstage-bench; this script uses
#              its growth/ folder: inputs cached there, regenerated when make_inputs.py
#              changes), CARGO_TARGET_DIR (default $HOME/.cache/rasterstage-target), DATABASE_URL
#              (default: what scripts/services.sh finds).
#
# Repetitions are interleaved: repetition 1 of every case at every size, then repetition 2,
# and so on, so that a machine whose speed drifts moves every figure alike. Each run's
# output is deleted before it (and the table dropped, then CHECKPOINT, before a load), then
# sync. Wall and CPU seconds and peak RSS come from /usr/bin/time of the whole process.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ARGS="$*"
W=21600 REPS="" QUICK=0 DOCS=1
while (($#)); do
    case "$1" in
    --quick) QUICK=1 W=2700 DOCS=0 ;;
    --width) W="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    --no-docs) DOCS=0 ;;
    -h | --help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "bench-growth.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if ((QUICK)); then REPS="${REPS:-1}"; else REPS="${REPS:-3}"; fi
[[ "$W" =~ ^[0-9]+$ && "$W" -ge 64 && $((W % 2)) -eq 0 ]] || { echo "bench-growth.sh: --width must be an even number of at least 64" >&2; exit 2; }
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || { echo "bench-growth.sh: --reps must be a positive number" >&2; exit 2; }

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rasterstage-target}"
BENCH_ROOT="${RASTERSTAGE_BENCH_DIR:-$HOME/.cache/rasterstage-bench}"
BENCH="$BENCH_ROOT/growth"
mkdir -p "$BENCH/inputs" "$BENCH/out" "$BENCH/logs" "$BENCH/bin"
log() { printf '[bench-growth %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[bench-growth] ERROR: %s\n' "$*" >&2; exit 1; }
# Commands are shown as strings: paths must not need quoting.
[[ "$BENCH$REPO$CARGO_TARGET_DIR" != *[[:space:]\'\"]* ]] || die "paths with spaces or quotes are not supported"
[[ -x /usr/bin/time ]] || die "/usr/bin/time missing (Debian package time)"

# Only PostgreSQL is needed: no cloud emulators unless asked for.
export RASTERSTAGE_CLOUD_EMULATORS="${RASTERSTAGE_CLOUD_EMULATORS:-0}"
# shellcheck source=scripts/services.sh
source "$REPO/scripts/services.sh"
PY="${RASTERSTAGE_PYTHON:?services.sh sets RASTERSTAGE_PYTHON}"
SCHEMA="bench_growth_$$"
psqlc() { psql -w -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" "$@"; }
growth_cleanup() {
    psqlc -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true
    rm -rf "$BENCH/out"
}
# services.sh's cleanup list: a trap of our own would replace its trap.
_RS_CLEANUP+=(growth_cleanup)

log "building the release binary and examples/parquet_floor.rs (target $CARGO_TARGET_DIR)"
(cd "$REPO" && cargo build --release --quiet --bin rasterstage --example parquet_floor) || die "cargo build --release failed"
# Private copies: a build in the shared target dir during the run must not swap them.
RS="$BENCH/bin/rasterstage" FLOOR="$BENCH/bin/parquet_floor"
cp "$CARGO_TARGET_DIR/release/rasterstage" "$RS.tmp" && mv "$RS.tmp" "$RS"
cp "$CARGO_TARGET_DIR/release/examples/parquet_floor" "$FLOOR.tmp" && mv "$FLOOR.tmp" "$FLOOR"
THREADS="$(nproc)"
LOAD_JOBS=2

# ---------------------------------------------------------------------------
# Inputs: per size, a Byte GLOBE-like raster and a dense Float32 one (+ its raw cells).
# ---------------------------------------------------------------------------
W2=$("$PY" -c "import math; print(2 * round($W * math.sqrt(2) / 2))")
WIDTHS=("$W" "$W2" $((2 * W)))
LABELS=(1x 2x 4x)
GEN="$REPO/scripts/bench/make_inputs.py"
GEN_SUM="$(sha256sum "$GEN" | cut -c1-12)"
for w in "${WIDTHS[@]}"; do
    h=$((w / 2))
    for flavour in byte float32-dense; do
        f="$BENCH/inputs/${flavour}_${w}x${h}.tif"
        raw=()
        [[ $flavour == float32-dense ]] && raw=("${f%.tif}.f32")
        if [[ -f "$f" && "$(cat "$f.stamp" 2>/dev/null)" == "$GEN_SUM" ]]; then
            log "input $f: cached"
        else
            log "making $f ($w x $h, $flavour)"
            rm -f "$f" "$f.stamp" "${raw[@]}"
            "$PY" "$GEN" "$f" "$flavour" "$w" "$h" "${raw[@]}" >&2
            echo "$GEN_SUM" >"$f.stamp"
        fi
    done
done
byte_in() { echo "$BENCH/inputs/byte_${1}x$(($1 / 2)).tif"; }
dense_in() { echo "$BENCH/inputs/float32-dense_${1}x$(($1 / 2)).tif"; }
res4() { "$PY" -c "print(repr(4 * 360.0 / $1))"; }

META="$BENCH/meta.env"
: >"$META"
meta() { printf '%s=%s\n' "$1" "$2" >>"$META"; }
bash "$REPO/scripts/bench/machine.sh" >>"$META"
meta pg "$(psqlc -Atc 'SHOW server_version')"
meta commit "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet HEAD -- src examples Cargo.toml 2>/dev/null || echo ' (+ uncommitted changes)')"
meta binary_sha256 "$(sha256sum "$RS" | cut -c1-12)"
meta command "scripts/bench-growth.sh${ARGS:+ $ARGS}"
meta reps "$REPS"
meta threads "$THREADS"
meta load_jobs "$LOAD_JOBS"
meta widths "${WIDTHS[*]}"
meta load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
log "machine: $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
SECONDS=0

# The load's input: the sum → parquet output of each size, staged once (not timed).
psqlc -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $SCHEMA CASCADE; CREATE SCHEMA $SCHEMA"
for w in "${WIDTHS[@]}"; do
    log "staging the load's input: sum of $(byte_in "$w") (not timed)"
    "$RS" -q convert "$(byte_in "$w")" --name growth --out "$BENCH/out/load-$w" --format parquet \
        --method sum --resolution "$(res4 "$w")" --threads "$THREADS" --overwrite >/dev/null
done
# Everything read from now on comes from the page cache.
for w in "${WIDTHS[@]}"; do cat "$(byte_in "$w")" "$(dense_in "$w")" "$(dense_in "$w" | sed 's/\.tif$/.f32/')" >/dev/null; done

# ---------------------------------------------------------------------------
# run_case CASE W REP OUTPATH SETUP_SQL CMD...: one timed run (output removed first).
# ---------------------------------------------------------------------------
RUNS="$BENCH/runs.csv"
echo "case,width,rep,seconds,cpu_s,peak_rss_kb,load1,rows" >"$RUNS"
CMDS="$BENCH/cmds"
rm -rf "$CMDS" && mkdir -p "$CMDS"
show() {
    local s="$*"
    s="${s//"$FLOOR"/parquet_floor}"
    s="${s//"$RS"/rasterstage}"
    s="${s//"$BENCH_ROOT"/\$BENCH}"
    printf '%s\n' "$s"
}
run_case() {
    local kase="$1" w="$2" rep="$3" out="$4" setup="$5"
    shift 5
    local lfile="$BENCH/logs/$kase-$w-$rep.log" tfile="$BENCH/logs/time.txt"
    [[ -f "$CMDS/$kase.txt" ]] || show "$@" >"$CMDS/$kase.txt"
    [[ "$out" == - ]] || rm -rf "$out"
    if [[ -n "$setup" ]]; then
        psqlc -c "SET client_min_messages = warning; $setup" >/dev/null
        psqlc -c "CHECKPOINT" >/dev/null
    fi
    sync
    local load1 t rows
    load1=$(cut -d' ' -f1 /proc/loadavg)
    if ! /usr/bin/time -f '%e %U %S %M' -o "$tfile" "$@" >"$lfile" 2>&1; then
        tail -n 5 "$lfile" >&2
        die "$kase at width $w (repetition $rep) failed: $(show "$@")"
    fi
    read -r -a t <"$tfile"
    rows=$(grep -oE '[0-9]+ rows' "$lfile" | head -n1 | cut -d' ' -f1 || true)
    echo "$kase,$w,$rep,${t[0]},$(awk -v u="${t[1]}" -v s="${t[2]}" 'BEGIN {printf "%.2f", u + s}'),${t[3]},$load1,${rows:-}" >>"$RUNS"
    log "$kase ${w}x$((w / 2)) rep $rep: ${t[0]} s, CPU $(awk -v u="${t[1]}" -v s="${t[2]}" 'BEGIN {printf "%.2f", u + s}') s, peak RSS $((t[3] / 1024)) MB (load average before: $load1)"
}

convert_case() { # CASE W REP SRC FORMAT [extra convert args...]
    local kase="$1" w="$2" rep="$3" src="$4" fmt="$5"
    shift 5
    run_case "$kase" "$w" "$rep" "$BENCH/out/$kase" "" \
        "$RS" -q convert "$src" --name growth --out "$BENCH/out/$kase" --format "$fmt" --threads "$THREADS" "$@"
}
floor_case() { # W REP
    local w="$1" rep="$2" src
    src="$(dense_in "$w")"
    run_case floor "$w" "$rep" "$BENCH/out/floor" "" "$FLOOR" "$src" "${src%.tif}.f32" "$w" growth "$BENCH/out/floor" "$THREADS"
}
# The floor must have written passthrough → parquet's tiles, byte for byte, one row per cell.
check_floor() { # W
    local a b k got want=$(($1 * ($1 / 2)))
    a=$(cd "$BENCH/out/pass_parquet/growth/tiles" && sha256sum -- * | sha256sum)
    b=$(cd "$BENCH/out/floor/growth/tiles" && sha256sum -- * | sha256sum)
    [[ "$a" == "$b" ]] || die "the Parquet floor's tiles differ from passthrough → parquet's at width $1"
    [[ -z "$(find "$BENCH/out/floor/growth" -mindepth 1 -maxdepth 1 ! -name tiles)" ]] || die "the floor wrote more than tiles"
    for k in pass_parquet floor; do
        got=$(awk -F, -v k="$k" -v w="$1" '$1 == k && $2 == w && $3 == 1 {print $8}' "$RUNS")
        [[ "$got" == "$want" ]] || die "$k wrote ${got:-no} rows at width $1, expected $want (every cell)"
    done
    log "floor check at width $1: same tiles as passthrough → parquet, $want rows"
}

for ((rep = 1; rep <= REPS; rep++)); do
    for w in "${WIDTHS[@]}"; do
        convert_case sum_parquet "$w" "$rep" "$(byte_in "$w")" parquet --method sum --resolution "$(res4 "$w")"
        convert_case sum_zarr "$w" "$rep" "$(byte_in "$w")" zarr --method sum --resolution "$(res4 "$w")"
        # The pair: alternate which goes first, so neither always gets the warmer machine.
        if ((rep % 2)); then
            convert_case pass_parquet "$w" "$rep" "$(dense_in "$w")" parquet
            floor_case "$w" "$rep"
        else
            floor_case "$w" "$rep"
            convert_case pass_parquet "$w" "$rep" "$(dense_in "$w")" parquet
        fi
        ((rep > 1)) || check_floor "$w"
        rm -rf "$BENCH/out/pass_parquet" "$BENCH/out/floor"
        convert_case pass_zarr "$w" "$rep" "$(dense_in "$w")" zarr
        rm -rf "$BENCH/out/sum_parquet" "$BENCH/out/sum_zarr" "$BENCH/out/pass_zarr"
        run_case load "$w" "$rep" - "DROP TABLE IF EXISTS $SCHEMA.growth" \
            "$RS" -q load --from "$BENCH/out/load-$w" --dataset growth --schema "$SCHEMA" --jobs "$LOAD_JOBS" --replace
        if ((rep == 1)); then
            meta "load_rows_$w" "$(psqlc -Atc "SELECT count(*) FROM $SCHEMA.growth")"
            meta "load_pk_$w" "$(psqlc -Atc "SELECT count(*) FROM pg_index WHERE indrelid = '$SCHEMA.growth'::regclass AND indisprimary")"
        fi
    done
done
meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta bench_seconds "$SECONDS"
log "all runs done in $SECONDS s; load average now $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
OUT_MD="$BENCH/growth.md"
"$PY" - "$RUNS" "$META" "$CMDS" "$OUT_MD" <<'EOF'
import csv, os, statistics, sys
runs, metap, cmds, out = sys.argv[1:]
meta = dict(l.rstrip("\n").split("=", 1) for l in open(metap) if "=" in l)
widths = [int(w) for w in meta["widths"].split()]
labels = dict(zip(widths, ["1x", "2x", "4x"]))
data = {}
for r in csv.DictReader(open(runs)):
    data.setdefault((r["case"], int(r["width"])), []).append(r)
cells = {w: w * (w // 2) for w in widths}
names = {"sum_parquet": "Byte sum to 4x the cell size → Parquet", "sum_zarr": "Byte sum to 4x the cell size → Zarr",
         "pass_parquet": "dense Float32 passthrough → Parquet", "floor": "Parquet floor (same tiles, no read, no commit)",
         "pass_zarr": "dense Float32 passthrough → Zarr", "load": f"load of the sum → Parquet output (--jobs {meta['load_jobs']}, primary key, ANALYZE)"}
order = ["sum_parquet", "sum_zarr", "pass_parquet", "floor", "pass_zarr", "load"]
med = lambda rs, k: statistics.median(float(r[k]) for r in rs)

def secs(rs):
    v = sorted(float(r["seconds"]) for r in rs)
    return f"{statistics.median(v):.2f}" + (f" ({v[0]:.2f}-{v[-1]:.2f})" if len(v) > 1 else "")

def rate(kase, w, rs):
    s = med(rs, "seconds")
    if kase == "load":
        n = int(meta[f"load_rows_{w}"])
        return f"{n / s / 1e6:.2f} M rows/s ({n / 1e6:.2f} M rows)"
    if kase == "floor" or kase.startswith("pass"):
        return f"{cells[w] / s / 1e6:.1f} M rows/s"
    return f"{cells[w] / s / 1e6:.1f} M source cells/s"

reps = int(meta["reps"])
L = ["## How cost grows", "",
     f"Measured by `{meta['command']}` on {meta['date']}: {meta['cpu']}, {meta['cores']} cores, "
     f"{meta['ram_gib']} GiB RAM, {meta['os']}; PostgreSQL {meta['pg']} on the same machine; rasterstage at "
     f"commit {meta['commit']} (binary sha256 {meta['binary_sha256']}), release build. Load average (1/5/15 min) "
     f"{meta['load_start']} at the start, {meta['load_end']} at the end (run took {int(meta['bench_seconds']) // 60} min).", "",
     "Global EPSG:4326 rasters made by `scripts/bench/make_inputs.py` (tiled 512 x 512, deflate), the same extent at "
     + ", ".join(f"{labels[w]} = {w:,} x {w // 2:,} ({cells[w] / 1e6:,.0f} M cells)" for w in widths)
     + ": `byte` (GLOBE-like: ocean = nodata, about a third land) for `--method sum` to 4x the source cell size "
     "(so output cells grow with the input cells), and `float32-dense` (every cell valid, predictor 3) for "
     f"passthrough. rasterstage with its defaults (window 1024) and `--threads {meta['threads']}`; the Parquet floor "
     "(`examples/parquet_floor.rs`) writes the same tiles as passthrough → Parquet, byte for byte (checked on the first "
     "repetition), through rasterstage's own plan, tile writer and store, on as many threads, but takes the cells "
     "from a raw copy in memory: no GeoTIFF decoding, no commit records, no `dataset.json`. Load: "
     f"`rasterstage load --jobs {meta['load_jobs']}` into a new table with the primary key and ANALYZE (the default), "
     "table dropped and CHECKPOINT before each run.", "",
     f"Median of {reps} run(s) (min-max in brackets), repetitions interleaved (repetition 1 of every case at every size, "
     "then repetition 2, ...); wall seconds, CPU s = user + system seconds of the process (median), peak RSS = "
     "`/usr/bin/time` maximum resident set size (largest run; for load the client's, not the server's).", "",
     "| case | size | seconds | CPU s | peak RSS MB | throughput |", "|---|---|---:|---:|---:|---|"]
for k in order:
    for w in widths:
        rs = data.get((k, w))
        if rs:
            rss = max(int(r["peak_rss_kb"]) for r in rs) / 1024
            L.append(f"| {names[k]} | {labels[w]} | {secs(rs)} | {med(rs, 'cpu_s'):.2f} | {rss:.0f} | {rate(k, w, rs)} |")
lo, hi = widths[0], widths[-1]
grow = cells[hi] / cells[lo]
L += ["", f"How each case grows from 1x to 4x the cells ({grow:.2f}x the cells; linear = time x{grow:.2f}, "
      "flat = peak RSS x1.00; \"linear\" below means within 15% of it or less, \"flat\" within 25%):", ""]
for k in order:
    a, b = data.get((k, lo)), data.get((k, hi))
    if not (a and b):
        continue
    t = med(b, "seconds") / med(a, "seconds")
    c = med(b, "cpu_s") / med(a, "cpu_s")
    m = max(int(r["peak_rss_kb"]) for r in b) / max(int(r["peak_rss_kb"]) for r in a)
    lin = lambda x: "linear or better" if x <= grow * 1.15 else "**worse than linear**"
    mv = "flat" if m <= 1.25 else "**grows**"
    L.append(f"- {names[k]}: time x{t:.2f} for x{grow:.2f} the cells: {lin(t)} (CPU s x{c:.2f}: {lin(c)}); "
             f"peak RSS x{m:.2f}: {mv}.")
loads = sorted(float(r["load1"]) for rs in data.values() for r in rs)
L += ["", f"1-minute load average read before each run: median {statistics.median(loads):.2f}, max {loads[-1]:.2f} "
      f"on {meta['cores']} cores; above the core count, other processes competed for the CPU and wall times "
      "carry their noise (CPU seconds much less so)."]
L += ["", "rasterstage / Parquet floor (passthrough → Parquet seconds / floor seconds, each pair run one right after "
      "the other, alternating which goes first; median of the pairs, min-max in brackets; issue target: at most 1.3x):", "",
      "| size | passthrough → Parquet s | floor s | rasterstage / floor | CPU: rasterstage / floor |", "|---|---:|---:|---:|---:|"]
for w in widths:
    p = {r["rep"]: r for r in data.get(("pass_parquet", w), [])}
    f = {r["rep"]: r for r in data.get(("floor", w), [])}
    both = sorted(set(p) & set(f), key=int)
    if not both:
        continue
    q = sorted(float(p[i]["seconds"]) / float(f[i]["seconds"]) for i in both)
    qc = sorted(float(p[i]["cpu_s"]) / float(f[i]["cpu_s"]) for i in both)
    rg = lambda v: f"{statistics.median(v):.2f}x" + (f" ({v[0]:.2f}-{v[-1]:.2f})" if len(v) > 1 else "")
    L.append(f"| {labels[w]} | {secs(data[('pass_parquet', w)])} | {secs(data[('floor', w)])} | {rg(q)} | {rg(qc)} |")
cmd = lambda k: open(os.path.join(cmds, k + ".txt")).read().strip()
L += ["", "Commands (`$BENCH` = `${RASTERSTAGE_BENCH_DIR:-$HOME/.cache/rasterstage-bench}`, `rasterstage` = the release "
      "binary, `parquet_floor` = `cargo build --release --example parquet_floor`; shown for the 1x size, the others "
      "differ in the file names and `--resolution`):", "", "```"]
for k in order:
    if os.path.exists(os.path.join(cmds, k + ".txt")):
        L += [f"# {names[k]}", cmd(k)]
L += ["```", "", "Raw figures: `$BENCH/growth/runs.csv` (every run).", ""]
open(out, "w").write("\n".join(L))
print("\n".join(L))
EOF

if ((DOCS)); then
    DOC="$REPO/docs/BENCHMARKS.md"
    "$PY" "$REPO/scripts/bench/replace_section.py" "$DOC" "$OUT_MD"
    log "wrote the \"How cost grows\" section of $DOC"
else
    log "report in $OUT_MD"
fi
