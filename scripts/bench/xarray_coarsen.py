"""rioxarray + dask: open the GeoTIFF lazily, coarsen(FACTOR).mean() (NaN-aware,
nodata masked), write Zarr. Chunks are set by hand to a multiple of both the
factor and the 512-cell GeoTIFF blocks (coarsen needs chunk sizes divisible by
the factor), as a user would have to. Dask's default threaded scheduler.

usage: xarray_coarsen.py SRC.tif OUT.zarr FACTOR
"""
import sys

import dask
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

src_path, out_path, f = sys.argv[1], sys.argv[2], int(sys.argv[3])
chunk = 512 * f  # 3072 for factor 6: divisible by the factor and aligned to blocks
da = rioxarray.open_rasterio(src_path, masked=True, chunks={"band": 1, "y": chunk, "x": chunk},
                             lock=False)
da = da.squeeze("band", drop=True)
out = da.coarsen(x=f, y=f, boundary="trim").mean()
out.name = "value"
with dask.config.set(scheduler="threads"):
    out.to_dataset().to_zarr(out_path, mode="w", consolidated=False)
print(f"wrote {out_path} {out.shape}")
