#!/usr/bin/env bash
# Peak RSS (and wall time) of `rasterstage preview` on a large staged grid, interleaved with
# gdal_translate -of PNG -outsize -r average on the source GeoTIFF (what GDAL users do).
# usage: scripts/bench/preview.sh WORKDIR [REPS]   (run after `source scripts/services.sh`)
# Writes WORKDIR/preview.tsv: case, rep, max RSS kB, elapsed s.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
W="$1"; REPS="${2:-3}"
RS="${CARGO_TARGET_DIR:-$HOME/.cache/rasterstage-target}/release/rasterstage"
mkdir -p "$W" && cd "$W"
[ -f byte.tif ] || "$RASTERSTAGE_PYTHON" "$REPO/scripts/bench/make_inputs.py" byte.tif byte 21600 10800
[ -f st/byte/dataset.json ] || "$RS" convert byte.tif --name byte --out st -q
[ -f st/byte_zarr/dataset.json ] || "$RS" convert byte.tif --name byte_zarr --out st --format zarr -q
measure() { # case command...
    local name="$1"; shift
    /usr/bin/time -f "%M %e" -o t.txt "$@" >/dev/null 2>&1
    printf '%s\t%s\t%s\n' "$name" "$rep" "$(tr ' ' '\t' < t.txt)" | tee -a preview.tsv
}
: > preview.tsv
for rep in $(seq "$REPS"); do
    measure "rasterstage parquet 1024" "$RS" preview st/byte --out p.png --width 1024
    measure "rasterstage zarr 1024" "$RS" preview st/byte_zarr --out z.png --width 1024
    measure "gdal_translate 1024" gdal_translate -q -of PNG -outsize 1024 0 -r average byte.tif g.png
    measure "rasterstage parquet 4096" "$RS" preview st/byte --out p4.png --width 4096
    measure "rasterstage zarr 4096" "$RS" preview st/byte_zarr --out z4.png --width 4096
    measure "gdal_translate 4096" gdal_translate -q -of PNG -outsize 4096 0 -r average byte.tif g4.png
    measure "rasterstage parquet 1024 --method mode" "$RS" preview st/byte --out m.png --width 1024 --method mode
done
