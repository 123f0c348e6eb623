#!/usr/bin/env bash
# demo.sh — rasterstage end to end on a small sample it makes itself. Run it first, on a fresh
# machine: it installs and starts what it needs (the same scripts/setup.sh and
# scripts/services.sh as the test suite), then
#   1. builds rasterstage (release),
#   2. writes four sample rasters (richness counts, categories, a continuous field) to demo-data/,
#   3. converts them with config.yml onto one 0.05-degree grid as Parquet tiles in ./staging,
#   4. converts one of them again as a Zarr v3 array,
#   5. shows what is staged, draws the plants tiles as a PNG (docs/demo-preview.png, the
#      picture in README.md), and reads the tiles back with DuckDB,
#   6. loads them into PostgreSQL and runs a SQL query, whose rows end the output.
# Every step must succeed: a step that cannot run stops the demo with a non-zero exit and a
# line naming what is missing, never a partial run that exits 0.
#
# Knobs: RASTERSTAGE_DEMO_SCHEMA (default public) is the PostgreSQL schema the tables go to;
# DATABASE_URL / PG* pick the server (default: the local one, or a private cluster).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rasterstage-target}"
SCHEMA="${RASTERSTAGE_DEMO_SCHEMA:-public}"

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'demo.sh: ERROR: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) and rerun"

# Idempotent and quick when everything is there; on a fresh machine it installs GDAL, the
# PostgreSQL client (and server binaries), and the Python venv that DuckDB comes from.
# The demo stages to a folder: no Azure or GCS emulator to install or start.
export RASTERSTAGE_CLOUD_EMULATORS=0
say "installing what is missing (scripts/setup.sh)"
bash scripts/setup.sh

say "starting the services (scripts/services.sh)"
# shellcheck source=services.sh
source scripts/services.sh

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

say "rasterstage preview staging/plants --out docs/demo-preview.png --width 512 --tiles"
# The picture README.md shows: the same sample gives the same bytes on every run.
"$RS" preview staging/plants --out docs/demo-preview.png --width 512 --tiles

say "DuckDB reads the tiles directly"
"$RASTERSTAGE_PYTHON" - <<'PY'
import duckdb
q = """SELECT count(*) AS cells, round(sum(value)) AS total_richness
       FROM read_parquet('staging/plants/tiles/*.parquet')"""
print(q)
print(duckdb.sql(q))
PY

say "rasterstage load --config config.yml --database-url \$DATABASE_URL --schema $SCHEMA"
"$RS" load --config config.yml --database-url "$DATABASE_URL" --schema "$SCHEMA"
Q="SELECT p.row_idx, p.col_idx, p.x, p.y, p.value AS plants, v.value AS vertebrates, l.value AS landcover
   FROM \"$SCHEMA\".plants p JOIN \"$SCHEMA\".vertebrates v USING (row_idx, col_idx)
   JOIN \"$SCHEMA\".landcover l USING (row_idx, col_idx)
   ORDER BY p.value DESC, p.row_idx, p.col_idx LIMIT 5"
say "psql: $Q"
psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -c "$Q"

say "done: staged data in ./staging, tables in schema $SCHEMA (see README.md for what to do next)"
