"""The original pipeline's approach: rasterio windowed reads + numpy block mean
(integer factor), writing a GeoTIFF window by window. Nodata/NaN cells are
ignored; an output cell with no valid input is NaN. One thread, default GDAL
settings (whatever GDAL_CACHEMAX the caller leaves in the environment).

usage: rasterio_blockmean.py SRC.tif OUT.tif FACTOR
"""
import sys

import numpy as np
import rasterio
from rasterio.windows import Window

src_path, out_path, f = sys.argv[1], sys.argv[2], int(sys.argv[3])
with rasterio.open(src_path) as src:
    H, W = src.height // f, src.width // f
    step = (2048 // f) * f  # source window: about 2048 cells, a multiple of the factor
    t = src.transform
    profile = dict(driver="GTiff", width=W, height=H, count=1, dtype="float32",
                   crs=src.crs, transform=rasterio.Affine(t.a * f, 0, t.c, 0, t.e * f, t.f),
                   nodata=float("nan"), tiled=True, blockxsize=256, blockysize=256,
                   compress="deflate")
    with rasterio.open(out_path, "w", **profile) as dst:
        for r0 in range(0, H * f, step):
            rh = min(step, H * f - r0)
            for c0 in range(0, W * f, step):
                cw = min(step, W * f - c0)
                a = src.read(1, window=Window(c0, r0, cw, rh), masked=True)
                a = a.reshape(rh // f, f, cw // f, f)
                m = a.mean(axis=(1, 3))  # masked mean: valid cells only
                out = np.ma.filled(m.astype(np.float32), np.nan)
                dst.write(out, 1, window=Window(c0 // f, r0 // f, cw // f, rh // f))
print(f"wrote {out_path} {W}x{H}")
