#!/usr/bin/env bash
# bench-load.sh — rasterstage load against DuckDB's postgres extension and against
# server-side binary COPY FROM a file (the ceiling), same tiles, same table shape,
# same PostgreSQL, same run. Writes the "## load" section of docs/BENCHMARKS.md
# (other sections are kept as they are).
#
#   scripts/bench-load.sh              8000 x 4000 Float32 (32 M rows), 3 repetitions
#   scripts/bench-load.sh --quick      2000 x 1000, 1 repetition, report in the bench dir only
#
# Options: --width W --height H --reps N --jobs J --no-docs
# Environment: RASTERSTAGE_BENCH_DIR (default $HOME/.cache/rasterstage-bench),
#              CARGO_TARGET_DIR (default $HOME/.cache/rasterstage-target), DATABASE_URL
#              (default: what scripts/services.sh finds).
#
# Every case loads into an empty table (row_idx int4, col_idx int4, x float8, y float8,
# value float4) without indexes; rows/s = rows / wall-clock seconds of the whole process;
# the median of the repetitions is reported, peak RSS is the largest
# "Maximum resident set size" of /usr/bin/time -v.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WIDTH=8000 HEIGHT=4000 REPS=3 QUICK=0 DOCS=1
JOBS="$(nproc)"
while (($#)); do
    case "$1" in
    --quick) QUICK=1 WIDTH=2000 HEIGHT=1000 REPS=1 DOCS=0 ;;
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
BENCH="${RASTERSTAGE_BENCH_DIR:-$HOME/.cache/rasterstage-bench}/load"
mkdir -p "$BENCH"
log() { printf '[bench-load] %s\n' "$*" >&2; }

# shellcheck source=services.sh
source "$REPO/scripts/services.sh"
(cd "$REPO" && cargo build --release --quiet)
RS="$CARGO_TARGET_DIR/release/rasterstage"
PY="$RASTERSTAGE_PYTHON"
SCHEMA=bench_load
psqlc() { psql -w -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" "$@"; }

# 1. Input raster and its staging (cached by size).
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
if [[ ! -f "$STAGING/bench/dataset.json" ]] || ! grep -q '"complete"' "$STAGING/bench/dataset.json"; then
    log "converting to $STAGING"
    "$RS" -q convert "$SRC" --name bench --out "$STAGING" --format parquet --overwrite
fi
ROWS="$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['row_count'])" "$STAGING/bench/dataset.json")"
TILES="$STAGING/bench/tiles"
log "$ROWS rows in $(find "$TILES" -name '*.parquet' | wc -l) tiles"

psqlc -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE; CREATE SCHEMA $SCHEMA"
trap 'psqlc -c "DROP SCHEMA IF EXISTS '"$SCHEMA"' CASCADE" >/dev/null 2>&1 || true' EXIT
SHAPE="(row_idx int4, col_idx int4, x float8, y float8, value float4)"

# time_case NAME SETUP_SQL CMD...: runs SETUP_SQL then CMD under /usr/bin/time -v, REPS times.
CSV="$BENCH/load.csv"
echo "case,rep,seconds,peak_rss_kb" >"$CSV"
time_case() {
    local name="$1" setup="$2"
    shift 2
    local rep
    for ((rep = 1; rep <= REPS; rep++)); do
        psqlc -c "$setup" >/dev/null
        psqlc -c "CHECKPOINT" >/dev/null
        /usr/bin/time -v -o "$BENCH/time.txt" "$@" >"$BENCH/out.txt" 2>&1 || {
            cat "$BENCH/out.txt" >&2
            exit 1
        }
        local secs rss
        secs="$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$BENCH/time.txt")"
        rss="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$BENCH/time.txt")"
        echo "$name,$rep,$secs,$rss" >>"$CSV"
        log "$name rep $rep: $secs s, peak RSS $((rss / 1024)) MB"
    done
}

# 2. rasterstage load (no primary key, to compare like with like; --replace starts empty).
RS_CMD="$RS -q load --from $STAGING --dataset bench --schema $SCHEMA --jobs $JOBS --no-index --replace"
time_case rasterstage "SELECT 1" $RS_CMD
got="$(psqlc -Atc "SELECT count(*) FROM $SCHEMA.bench")"
[[ "$got" == "$ROWS" ]] || { log "rasterstage loaded $got rows, expected $ROWS"; exit 1; }

# 3. DuckDB postgres extension, same tiles, same table shape.
DUCK_PY="$BENCH/duckdb_insert.py"
cat >"$DUCK_PY" <<EOF
import duckdb, sys
con = duckdb.connect()
con.execute("SET extension_directory='$RASTERSTAGE_DUCKDB_EXT_DIR'")
con.execute("SET autoinstall_known_extensions=false")
con.execute("LOAD postgres")
con.execute("ATTACH '$DATABASE_URL' AS pg (TYPE postgres)")
con.execute("INSERT INTO pg.$SCHEMA.duck SELECT * FROM read_parquet('$TILES/*.parquet')")
EOF
DUCK_CMD="$PY $DUCK_PY"
time_case duckdb "DROP TABLE IF EXISTS $SCHEMA.duck; CREATE TABLE $SCHEMA.duck $SHAPE" $DUCK_CMD
got="$(psqlc -Atc "SELECT count(*) FROM $SCHEMA.duck")"
[[ "$got" == "$ROWS" ]] || { log "duckdb loaded $got rows, expected $ROWS"; exit 1; }

# 4. Ceiling: server-side COPY FROM a binary file made from the loaded table.
# The server process reads the file: put it where its user can (not under \$HOME).
BIN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/rasterstage-bench-copy.XXXXXX")"
chmod 755 "$BIN_DIR"
BIN="$BIN_DIR/bench.copy"
psqlc -c "\\copy $SCHEMA.bench TO '$BIN' (FORMAT binary)"
chmod 644 "$BIN"
COPY_CMD="psql -w -X -q -v ON_ERROR_STOP=1 $DATABASE_URL -c \"COPY $SCHEMA.ceiling FROM '$BIN' (FORMAT binary)\""
time_case copy_file "DROP TABLE IF EXISTS $SCHEMA.ceiling; CREATE TABLE $SCHEMA.ceiling $SHAPE" \
    psql -w -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "COPY $SCHEMA.ceiling FROM '$BIN' (FORMAT binary)"
got="$(psqlc -Atc "SELECT count(*) FROM $SCHEMA.ceiling")"
[[ "$got" == "$ROWS" ]] || { log "COPY loaded $got rows, expected $ROWS"; exit 1; }
rm -rf "$BIN_DIR"

# 5. Report.
OUT="$BENCH/load.md"
"$PY" - "$CSV" "$OUT" "$ROWS" "$WIDTH" "$HEIGHT" "$REPS" "$JOBS" "$RS_CMD" "$DUCK_CMD" "$COPY_CMD" "$(cat "$DUCK_PY")" <<'EOF'
import csv, statistics, sys, subprocess
csvp, out, rows, w, h, reps, jobs, rs_cmd, duck_cmd, copy_cmd, duck_py = sys.argv[1:]
rows = int(rows)
data = {}
for r in csv.DictReader(open(csvp)):
    data.setdefault(r["case"], []).append((float(r["seconds"]), int(r["peak_rss_kb"])))
med = {k: statistics.median(s for s, _ in v) for k, v in data.items()}
rss = {k: max(m for _, m in v) for k, v in data.items()}
import os; pg = subprocess.run(["psql", "-w", "-X", "-Atc", "SHOW server_version", os.environ["DATABASE_URL"]], capture_output=True, text=True).stdout.strip()
label = {"rasterstage": "rasterstage load (binary COPY, %s connections)" % jobs,
         "duckdb": "DuckDB postgres extension, INSERT ... SELECT * FROM read_parquet",
         "copy_file": "server-side COPY FROM a binary file (ceiling)"}
lines = ["## load", "",
         f"Measured by `scripts/bench-load.sh` on this machine ({subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores), "
         f"PostgreSQL {pg}: a {w} x {h} Float32 raster (all cells valid: {rows:,} rows), staged as Parquet "
         f"(window 1024), loaded into an empty unindexed table `(row_idx int4, col_idx int4, x float8, y float8, value float4)`. "
         f"Median of {reps} run(s); wall-clock time of the whole process; peak RSS from `/usr/bin/time -v` (largest run).", "",
         "| path | seconds | rows/s | peak RSS | vs rasterstage |", "|---|---|---|---|---|"]
for k in ["rasterstage", "duckdb", "copy_file"]:
    if k in med:
        lines.append(f"| {label[k]} | {med[k]:.2f} | {rows / med[k] / 1e6:.2f} M | {rss[k] / 1024:.0f} MB | {med['rasterstage'] / med[k]:.2f}x |")
lines += ["", f"rasterstage / DuckDB rows/s: **{med['duckdb'] / med['rasterstage']:.2f}x** (target: at least 1.3x).", "",
          "Commands:", "", "```", rs_cmd, duck_cmd + "   # runs:", duck_py.strip(), copy_cmd, "```", ""]
open(out, "w").write("\n".join(lines))
print("\n".join(lines))
EOF

if ((DOCS)); then
    DOC="$REPO/docs/BENCHMARKS.md"
    "$PY" - "$DOC" "$OUT" <<'EOF'
import os, re, sys
doc, sec = sys.argv[1], open(sys.argv[2]).read().rstrip() + "\n"
text = open(doc).read() if os.path.exists(doc) else "# Benchmarks\n"
m = re.search(r"^## load\b.*?(?=^## |\Z)", text, flags=re.S | re.M)
text = text[:m.start()] + sec + ("\n" + text[m.end():] if text[m.end():] else "") if m else text.rstrip() + "\n\n" + sec
open(doc, "w").write(text)
EOF
    log "wrote the load section of $DOC"
else
    log "report in $OUT"
fi
