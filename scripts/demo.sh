#!/usr/bin/env bash
# demo.sh — rasterstage end to end on a small sample it makes itself:
#   1. builds rasterstage (release),
#   2. writes four sample rasters (richness counts, categories, a continuous field) to demo-data/,
#   3. converts them with config.yml onto one 0.05-degree grid as Parquet tiles in ./staging,
#   4. shows what is staged, and reads it back with DuckDB when the test venv is there,
#   5. loads it into PostgreSQL and runs a SQL query, when `rasterstage load` and a server exist.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rasterstage-target}"

say() { printf '\n==> %s\n' "$*"; }

if ! command -v gdalinfo >/dev/null 2>&1 || ! dpkg -s libgdal-dev >/dev/null 2>&1; then
    say "installing GDAL (scripts/setup.sh)"
    bash scripts/setup.sh
fi

say "building rasterstage"
cargo build --release --quiet --bin rasterstage --example make_sample
RS="$CARGO_TARGET_DIR/release/rasterstage"

say "making the sample rasters in demo-data/"
[ -f demo-data/temperature.tif ] || "$CARGO_TARGET_DIR/release/examples/make_sample" demo-data

say "rasterstage convert --config config.yml --overwrite   (parquet tiles in ./staging)"
# --overwrite: a rerun of the demo after the sample was remade replaces the old staging.
"$RS" convert --config config.yml --overwrite

say "the same plants raster as a Zarr v3 array"
"$RS" convert demo-data/plants.tif --name plants_zarr --out ./staging --format zarr \
    --resolution 0.05 --method sum --bounds -10 35 20 60.05 --window 256 --overwrite

say "rasterstage inspect ./staging"
"$RS" inspect ./staging

VENV_PY="${RASTERSTAGE_PYTHON:-$HOME/.cache/rasterstage-venv/bin/python}"
if [ -x "$VENV_PY" ] && "$VENV_PY" -c "import duckdb" 2>/dev/null; then
    say "DuckDB reads the tiles directly"
    "$VENV_PY" - <<'PY'
import duckdb
q = """SELECT count(*) AS cells, round(sum(value)) AS total_richness
       FROM read_parquet('staging/plants/tiles/*.parquet')"""
print(q)
print(duckdb.sql(q))
PY
fi

if "$RS" help load >/dev/null 2>&1; then
    say "services for the load step (scripts/services.sh)"
    # shellcheck source=services.sh
    source scripts/services.sh
    say "rasterstage load --config config.yml --database-url \$DATABASE_URL"
    "$RS" load --config config.yml --database-url "$DATABASE_URL"
    Q='SELECT p.row_idx, p.col_idx, p.x, p.y, p.value AS plants, v.value AS vertebrates, l.value AS landcover
       FROM plants p JOIN vertebrates v USING (row_idx, col_idx) JOIN landcover l USING (row_idx, col_idx)
       ORDER BY p.value DESC LIMIT 5'
    say "psql: $Q"
    psql "$DATABASE_URL" -c "$Q"
fi

say "done: staged data in ./staging (see README.md for what to do next)"
