"""The floor: GDAL reads (and decompresses) every block of band 1 and nothing
else. One thread, block by block, GDAL_CACHEMAX as set by the caller (bench.sh
sets 64 MB). Prints cells read and a checksum so the read cannot be skipped.

usage: read_floor.py SRC.tif
"""
import sys

import numpy as np
import rasterio

cells = 0
acc = 0
with rasterio.open(sys.argv[1]) as src:
    for _, win in src.block_windows(1):
        a = src.read(1, window=win)
        cells += a.size
        acc ^= int(a.view(np.uint8).reshape(-1)[0])
print(f"read {cells} cells ({acc})")
