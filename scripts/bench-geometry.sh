#!/usr/bin/env bash
# bench-geometry.sh — what `load --geometry` costs: the same staged tiles loaded with and
# without the PostGIS geom column, same machine, same server, same run.
#
# Cases (each into a table dropped just before, then CHECKPOINT and sync):
#   plain            rasterstage load                    (COPY, primary key, ANALYZE)
#   geometry         rasterstage load --geometry         (COPY with geom, primary key, GiST, ANALYZE)
#   plain_noindex    rasterstage load --no-index         (COPY only)
#   geometry_noindex rasterstage load --geometry --no-index
# Repetitions are interleaved in pairs (plain, geometry, plain_noindex, geometry_noindex,
# then again), so a machine whose speed drifts moves every case alike; the report gives the
# median and min-max of each case and the geometry/plain ratio of each pair.
# Writes the "## load --geometry" section of docs/BENCHMARKS.md (every other section is kept).
#
#   scripts/bench-geometry.sh            4000 x 2000 Float32 (8 M rows), 3 repetitions
#   scripts/bench-geometry.sh --quick    1000 x 500, 1 repetition, report in the bench dir only
#
# Options: --width W --height H --reps N --jobs J --no-docs
# Environment: RASTERSTAGE_BENCH_DIR (default $HOME/.cache/rasterstage-bench),
#              CARGO_TARGET_DIR (default $HOME/.cache/rasterstage-target), DATABASE_URL
#              (default: what scripts/services.sh finds; it needs PostGIS, which
#              scripts/setup.sh installs and services.sh creates in database test).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WIDTH=4000 HEIGHT=2000 REPS=3 DOCS=1
JOBS="$(nproc)"
while (($#)); do
    case "$1" in
    --quick) WIDTH=1000 HEIGHT=500 REPS=1 DOCS=0 ;;
    --width) WIDTH="$2"; shift ;;
    --height) HEIGHT="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    --jobs) JOBS="$2"; shift ;;
    --no-docs) DOCS=0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rasterstage-target}"
BENCH_ROOT="${RASTERSTAGE_BENCH_DIR:-$HOME/.cache/rasterstage-bench}"
BENCH="$BENCH_ROOT/geometry"
mkdir -p "$BENCH"
log() { printf '[bench-geometry %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[bench-geometry] ERROR: %s\n' "$*" >&2; exit 1; }
[[ "$BENCH$REPO$CARGO_TARGET_DIR" != *[[:space:]\'\"]* ]] || die "paths with spaces or quotes are not supported"

# shellcheck source=scripts/services.sh
source "$REPO/scripts/services.sh"
PY="$RASTERSTAGE_PYTHON"
SCHEMA=bench_geometry
psqlc() { psql -w -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" "$@"; }
[[ "$(psqlc -Atc "SELECT count(*) FROM pg_extension WHERE extname = 'postgis'")" == 1 ]] ||
    die "no PostGIS in $DATABASE_URL: run scripts/setup.sh (services.sh then creates the extension)"
_RS_CLEANUP+=("psql -w -X -q '$DATABASE_URL' -c 'DROP SCHEMA IF EXISTS $SCHEMA CASCADE'")

log "building the release binary (target $CARGO_TARGET_DIR)"
(cd "$REPO" && cargo build --release --quiet)
# A private copy: a build in the shared target dir during the run must not swap the binary.
mkdir -p "$BENCH/bin"
RS="$BENCH/bin/rasterstage"
cp "$CARGO_TARGET_DIR/release/rasterstage" "$RS.tmp" && mv "$RS.tmp" "$RS"

# The input: a Float32 raster of random values, every cell valid, staged as Parquet.
SRC="$BENCH/f32_${WIDTH}x${HEIGHT}.tif"
STAGING="$BENCH/staging_${WIDTH}x${HEIGHT}"
if [[ ! -f "$SRC" ]]; then
    log "generating $SRC"
    "$PY" - "$SRC" "$WIDTH" "$HEIGHT" <<'EOF'
import sys, numpy as np, rasterio
from rasterio.transform import from_origin
path, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(42)
res = 360.0 / w
with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1, dtype="float32",
                   crs="EPSG:4326", transform=from_origin(-180, 90, res, res), nodata=-9999,
                   tiled=True, blockxsize=512, blockysize=512, compress="deflate") as d:
    for y in range(0, h, 512):
        n = min(512, h - y)
        d.write(rng.random((n, w), dtype=np.float32) * 1000, 1, window=((y, y + n), (0, w)))
EOF
fi
if ! grep -qs '"complete"' "$STAGING/bench/dataset.json"; then
    log "converting to $STAGING"
    "$RS" -q convert "$SRC" --name bench --out "$STAGING" --format parquet --overwrite
fi
ROWS="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["row_count"])' "$STAGING/bench/dataset.json")"
cat "$STAGING"/bench/tiles/*.parquet >/dev/null # warm the page cache
psqlc -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $SCHEMA CASCADE"

META="$BENCH/meta.env"
: >"$META"
meta() { printf '%s=%s\n' "$1" "$2" >>"$META"; }
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
meta pg "$(psqlc -Atc 'SHOW server_version')"
meta postgis "$(psqlc -Atc "SELECT extversion FROM pg_extension WHERE extname = 'postgis'")"
meta commit "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo ' (+ uncommitted changes in src/)')"
meta rows "$ROWS"
meta size "${WIDTH}x${HEIGHT}"
meta reps "$REPS"
meta jobs "$JOBS"
meta load_start "$(cut -d' ' -f1-3 /proc/loadavg)"

# Each case loads dataset bench into its own table (--table-prefix), so the sizes can be
# compared at the end.
declare -A FLAGS=([plain]="" [geometry]="--geometry" [plain_noindex]="--no-index" [geometry_noindex]="--geometry --no-index")
CASES=(plain geometry plain_noindex geometry_noindex)
CSV="$BENCH/geometry.csv"
echo "case,rep,seconds,load1,t0" >"$CSV"
CMDS="$BENCH/commands.txt"
: >"$CMDS"
for ((rep = 1; rep <= REPS; rep++)); do
    for c in "${CASES[@]}"; do
        cmd="$RS -q load --from $STAGING --dataset bench --schema $SCHEMA --table-prefix ${c}_ --jobs $JOBS${FLAGS[$c]:+ ${FLAGS[$c]}} --replace"
        ((rep == 1)) && printf '%s\n' "${cmd//"$RS"/rasterstage}" | sed "s#$BENCH_ROOT#\$BENCH#g" >>"$CMDS"
        psqlc -c "SET client_min_messages = warning; DROP TABLE IF EXISTS $SCHEMA.${c}_bench" >/dev/null 2>&1 || true
        psqlc -c "CHECKPOINT" >/dev/null
        sync
        load1=$(cut -d' ' -f1 /proc/loadavg)
        t0=$(date +%s.%N)
        # The log's UTC timestamps of "building the primary key" and "building the GiST
        # index" split the run into COPY, primary key, and GiST index + ANALYZE.
        RUST_LOG=info $cmd >/dev/null 2>"$BENCH/log-$c-$rep.txt" || die "$c failed: $cmd (log: $BENCH/log-$c-$rep.txt)"
        t1=$(date +%s.%N)
        secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
        echo "$c,$rep,$secs,$load1,$t0" >>"$CSV"
        log "$c rep $rep: $secs s (load average before: $load1)"
    done
done
# verify reads every row once more with geom: its extra pass (no geom NULL or away from
# (x, y)) against the plain table's verify, interleaved as above.
for ((rep = 1; rep <= REPS; rep++)); do
    for c in plain geometry; do
        cmd="$RS -q verify --from $STAGING --dataset bench --schema $SCHEMA --table-prefix ${c}_"
        ((rep == 1)) && printf '%s\n' "${cmd//"$RS"/rasterstage}" | sed "s#$BENCH_ROOT#\$BENCH#g" >>"$CMDS"
        load1=$(cut -d' ' -f1 /proc/loadavg)
        t0=$(date +%s.%N)
        $cmd >/dev/null || die "verify of $c failed: $cmd"
        t1=$(date +%s.%N)
        secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
        echo "verify_$c,$rep,$secs,$load1,$t0" >>"$CSV"
        log "verify $c rep $rep: $secs s"
    done
done
meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
for c in "${CASES[@]}"; do
    [[ "$(psqlc -Atc "SELECT count(*) FROM $SCHEMA.${c}_bench")" == "$ROWS" ]] || die "$c: row count differs from $ROWS"
    meta "size_$c" "$(psqlc -Atc "SELECT pg_total_relation_size('$SCHEMA.${c}_bench')")"
done
# The geometry tables answer a polygon query as the plain ones do on x/y.
Q="SELECT count(*) FROM $SCHEMA.geometry_bench WHERE ST_Within(geom, ST_MakeEnvelope(-20.3, -10.1, 30.7, 40.9, 4326))"
QXY="SELECT count(*) FROM $SCHEMA.plain_bench WHERE x > -20.3 AND x < 30.7 AND y > -10.1 AND y < 40.9"
[[ "$(psqlc -Atc "$Q")" == "$(psqlc -Atc "$QXY")" ]] || die "the polygon query on geom and on x/y differ"

REPORT="$BENCH/report.md"
"$PY" - "$CSV" "$META" "$CMDS" "$REPORT" "$BENCH" <<'EOF'
import csv, datetime, re, statistics, sys
csv_path, meta_path, cmds_path, out, bench = sys.argv[1:6]
meta = dict(l.rstrip("\n").split("=", 1) for l in open(meta_path) if "=" in l)
runs, stages = {}, {}
for r in csv.DictReader(open(csv_path)):
    runs.setdefault(r["case"], []).append(float(r["seconds"]))
    if r["case"] in ("plain", "geometry"):
        t0, t1 = float(r["t0"]), float(r["t0"]) + float(r["seconds"])
        marks = {}
        for line in open(f"{bench}/log-{r['case']}-{r['rep']}.txt"):
            m = re.match(r"(\S+Z) +INFO .*building the (primary key|GiST index)", line)
            if m:
                ts = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
                marks[m.group(2)] = ts.timestamp()
        pk = marks["primary key"]
        s = stages.setdefault(r["case"], {})
        s.setdefault("COPY", []).append(pk - t0)
        if "GiST index" in marks:
            s.setdefault("primary key", []).append(marks["GiST index"] - pk)
            s.setdefault("GiST index + ANALYZE", []).append(t1 - marks["GiST index"])
        else:
            s.setdefault("primary key + ANALYZE", []).append(t1 - pk)
rows = int(meta["rows"])
def fmt(c):
    v = runs[c]
    return f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})"
label = {
    "plain": "`load` (COPY, primary key, ANALYZE)",
    "geometry": "`load --geometry` (COPY with geom, primary key, GiST index, ANALYZE)",
    "plain_noindex": "`load --no-index` (COPY only)",
    "geometry_noindex": "`load --geometry --no-index` (COPY with geom only)",
}
lines = ["## load --geometry", ""]
lines.append(
    f"Measured by `scripts/bench-geometry.sh` on {meta['date']}: {meta['cpu']}; PostgreSQL {meta['pg']} with PostGIS {meta['postgis']} "
    f"on the same machine; rasterstage at commit {meta['commit']}, release build, `--jobs {meta['jobs']}`. "
    f"Load average (1/5/15 min) {meta['load_start']} at the start, {meta['load_end']} at the end: the machine is shared with "
    "other engineers' builds and tests, so absolute times carry noise; each pair of cases ran one after the other."
)
lines.append("")
lines.append(
    f"A {meta['size'].replace('x', ' x ')} Float32 raster in EPSG:4326 (every cell valid: {rows:,} rows), staged as Parquet (window 1024), "
    "loaded into a table dropped just before each run (then `CHECKPOINT` and `sync`). "
    f"Median of {meta['reps']} run(s) (min-max in brackets), wall-clock time of the whole `rasterstage load`, "
    "interleaved: repetition 1 of every case, then repetition 2, and so on."
)
lines.append("")
lines.append("| case | seconds | rows/s | table + indexes on disk |")
lines.append("|---|---|---|---|")
for c in ["plain", "geometry", "plain_noindex", "geometry_noindex"]:
    m = statistics.median(runs[c])
    lines.append(f"| {label[c]} | {fmt(c)} | {rows / m / 1e6:.2f} M | {int(meta['size_' + c]) / 2**20:.0f} MB |")
lines.append("")
for a, b, what in [("geometry", "plain", "with indexes"), ("geometry_noindex", "plain_noindex", "COPY only")]:
    ratios = [g / p for g, p in zip(runs[a], runs[b])]
    lines.append(
        f"- `--geometry` / plain, {what}: **{statistics.median(ratios):.2f}x** the time "
        f"(pair by pair: {', '.join(f'{r:.2f}x' for r in ratios)})."
    )
for c in ("plain", "geometry"):
    parts = ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in stages[c].items())
    lines.append(f"- Where the time of `{dict(plain='load', geometry='load --geometry')[c]}` goes (medians, s; split at its log lines \"building the primary key\" and \"building the GiST index\"; ANALYZE includes the catalogue row): {parts}.")
ratios = [g / p for g, p in zip(runs["verify_geometry"], runs["verify_plain"])]
lines.append(
    f"- `verify` of the same tables (after the loads): plain {fmt('verify_plain')} s, with geom {fmt('verify_geometry')} s "
    f"(its extra pass checks that no geom is NULL or away from (x, y)); pair by pair {', '.join(f'{r:.2f}x' for r in ratios)}."
)
lines.append(
    "- The geometry tables answer `ST_Within(geom, ST_MakeEnvelope(-20.3, -10.1, 30.7, 40.9, 4326))` with the same count as the "
    "plain table's `x`/`y` bounds (checked by the script after the runs)."
)
lines.append("")
lines.append("Commands (`$BENCH` = `${RASTERSTAGE_BENCH_DIR:-$HOME/.cache/rasterstage-bench}`, `rasterstage` = the release binary; "
             "`DATABASE_URL` from `scripts/services.sh`):")
lines.append("")
lines.append("```")
lines.extend(l.rstrip("\n") for l in open(cmds_path))
lines.append("```")
open(out, "w").write("\n".join(lines) + "\n")
EOF
log "report: $REPORT"
if ((DOCS)); then
    DOC="$REPO/docs/BENCHMARKS.md"
    # Replace the section (up to the next "## " heading) or append it.
    "$PY" - "$DOC" "$REPORT" <<'EOF'
import re, sys
doc, report = sys.argv[1], open(sys.argv[2]).read()
text = open(doc).read()
m = re.search(r"^## load --geometry\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
text = text[: m.start()] + report + "\n" + text[m.end():] if m else text.rstrip("\n") + "\n\n" + report
open(doc, "w").write(text.rstrip("\n") + "\n")
EOF
    log "wrote the \"## load --geometry\" section of $DOC"
fi
