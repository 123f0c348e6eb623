"""Make the benchmark inputs for scripts/bench.sh and scripts/bench-growth.sh: a global
EPSG:4326 raster (43200 x 21600, 30 arc-seconds, at bench.sh's full size) in three
flavours, written strip by strip so that generation never holds more than one 512-row
strip in memory.

  byte:          Byte, ocean = nodata 255, land 0..200: a smooth field plus noise
  float32:       Float32, ocean = NaN, land a smooth field (no nodata value needed)
  float32-dense: Float32, every cell valid: land as in float32, ocean a smooth negative
                 depth-like field (a passthrough writes one row per cell)

Continents come from a low-frequency sum of separable sin/cos products
thresholded at a level that leaves about 30% land, like the Earth. Both files
are tiled 512x512 and deflate-compressed GeoTIFFs (Float32 with the floating
point predictor, as such files usually are).

With RAW (float32-dense only) the same cells are also written to RAW as raw
little-endian Float32, row-major, no header: what bench-growth.sh's Parquet floor
(examples/parquet_floor.rs) reads instead of decoding the GeoTIFF.

usage: make_inputs.py OUT.tif byte|float32|float32-dense WIDTH HEIGHT [RAW]
"""
import sys
import time

import numpy as np
import rasterio
from rasterio.transform import from_origin

if len(sys.argv) not in (5, 6):
    sys.exit(__doc__.rsplit("usage: ", 1)[1].strip())
out, flavour, width, height = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
raw_path = sys.argv[5] if len(sys.argv) == 6 else None
if raw_path and flavour != "float32-dense":
    sys.exit("a RAW copy is made for float32-dense only")
res = 360.0 / width
assert abs(180.0 / height - res) < 1e-12, "width must be 2 x height (global grid)"
STRIP = 512

# Low-frequency terms: amplitude, lon frequency, lon phase, lat frequency, lat phase.
rng = np.random.default_rng(42)
TERMS = [(rng.uniform(0.4, 1.0) / (k + 1), k + 1, rng.uniform(0, 2 * np.pi),
          rng.integers(1, 5), rng.uniform(0, 2 * np.pi)) for k in range(16)]
LAND_LEVEL = 0.24  # about a third of the cells end up as land

lon = np.radians(-180.0 + (np.arange(width) + 0.5) * res)
# Per-term longitude factors, computed once: (terms, width).
lon_f = np.stack([np.sin(f * lon + p) for (_, f, p, _, _) in TERMS]).astype(np.float32)
lon_g = np.cos(3 * lon).astype(np.float32)  # a second, independent factor for the values


def field(row0, rows):
    lat = np.radians(90.0 - (np.arange(row0, row0 + rows) + 0.5) * res)
    lat_f = np.stack([a * np.cos(g * lat + q) for (a, _, _, g, q) in TERMS]).astype(np.float32)
    # sum_k lat_f[k, i] * lon_f[k, j]: a (rows, terms) @ (terms, width) product.
    z = lat_f.T @ lon_f
    # Fewer continents near the poles except an Antarctica-like cap.
    z -= (0.25 * np.abs(np.sin(lat)) ** 4).astype(np.float32)[:, None]
    z += (0.8 * np.clip((-np.degrees(lat) - 62.0) / 10.0, 0.0, 1.0)).astype(np.float32)[:, None]
    return z, lat


profile = dict(driver="GTiff", width=width, height=height, count=1, crs="EPSG:4326",
               transform=from_origin(-180.0, 90.0, res, res), tiled=True,
               blockxsize=512, blockysize=512, compress="deflate", BIGTIFF="IF_SAFER",
               num_threads="ALL_CPUS")
if flavour == "byte":
    profile.update(dtype="uint8", nodata=255)
elif flavour in ("float32", "float32-dense"):
    profile.update(dtype="float32", nodata=float("nan"), predictor=3)
else:
    sys.exit(f"unknown flavour {flavour}")

t0 = time.time()
noise_rng = np.random.default_rng(7)
land_cells = 0
raw = open(raw_path + ".part", "wb") if raw_path else None
with rasterio.open(out + ".part", "w", **profile) as dst:
    for row0 in range(0, height, STRIP):
        rows = min(STRIP, height - row0)
        z, lat = field(row0, rows)
        land = z > LAND_LEVEL
        land_cells += int(land.sum())
        # Values vary smoothly with elevation-like z and latitude.
        smooth = (z - LAND_LEVEL) * 180.0 + 60.0 * np.cos(lat).astype(np.float32)[:, None] \
            + 20.0 * lon_g[None, :]
        if flavour == "byte":
            noise = noise_rng.integers(-6, 7, size=z.shape, dtype=np.int16)
            v = np.clip(smooth.astype(np.int16) + noise, 0, 200).astype(np.uint8)
            v[~land] = 255
        elif flavour == "float32":
            v = (smooth * 0.37 + 5.0).astype(np.float32)
            v[~land] = np.nan
        else:
            v = (smooth * 0.37 + 5.0).astype(np.float32)
            # Ocean: depth grows away from the coast (z falls below the land level).
            sea = ((z - LAND_LEVEL) * 4000.0 - 10.0 * lon_g[None, :]).astype(np.float32)
            v[~land] = sea[~land]
        dst.write(v, 1, window=((row0, row0 + rows), (0, width)))
        if raw:
            raw.write(v.astype("<f4", copy=False).tobytes())
import os
if raw:
    raw.close()
    os.replace(raw_path + ".part", raw_path)
os.replace(out + ".part", out)
print(f"{out}: {width}x{height} {flavour}, land {land_cells / (width * height):.1%}, "
      f"{os.path.getsize(out) / 1e6:.1f} MB, {time.time() - t0:.1f} s", flush=True)
