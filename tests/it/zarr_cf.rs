//! Zarr `spatial_ref` carries the CF grid mapping rioxarray writes: for a geographic CRS, a
//! UTM zone and LAEA Europe, every attribute rasterstage writes equals pyproj's
//! `CRS.to_cf()` (numbers within 1e-9 relative), and rioxarray reads the CRS.

use crate::common::*;

#[test]
fn zarr_spatial_ref_has_the_cf_grid_mapping_of_pyproj() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("plants.tif");
    let spec = RasterSpec { x0: 5.0, y0: 55.0, nodata: Some(-9999.0), ..RasterSpec::geographic(120, 80, 0.05) };
    let mut next = lcg(21);
    let values: Vec<f32> = (0..spec.width * spec.height).map(|_| (next() % 1000) as f32).collect();
    write_tif(&src, &spec, values);
    let out = dir.path().join("staging");
    let cases: [(&str, u32, &[&str]); 6] = [
        ("geo", 4326, &[]),
        ("utm", 32632, &["--target-crs", "EPSG:32632", "--resolution", "5000", "--method", "average"]),
        ("laea", 3035, &["--target-crs", "EPSG:3035", "--resolution", "5000", "--method", "average"]),
        ("albers", 5070, &["--target-crs", "EPSG:5070", "--resolution", "5000", "--method", "average"]),
        ("lcc", 2154, &["--target-crs", "EPSG:2154", "--resolution", "5000", "--method", "average"]),
        ("polar", 3413, &["--target-crs", "EPSG:3413", "--resolution", "5000", "--method", "average"]),
    ];
    for (name, epsg, extra) in cases {
        for v in ["2", "3"] {
            let ds = format!("{name}_v{v}");
            let mut args = vec!["convert", s(&src), "--name", &ds, "--out", s(&out), "--format", "zarr"];
            args.extend(["--zarr-version", v, "--window", "64"]);
            args.extend(extra);
            ok(&args);
            let group = out.join(&ds).join(format!("{ds}.zarr"));
            let code = format!(
                r#"
import math, warnings, pyproj, zarr, xarray as xr, rioxarray
attrs = dict(zarr.open_group({g:?}, mode="r")["spatial_ref"].attrs)
ref = pyproj.CRS.from_wkt(attrs["crs_wkt"]).to_cf()
mine = {{k: v for k, v in attrs.items() if k not in ("crs_wkt", "spatial_ref", "GeoTransform", "_ARRAY_DIMENSIONS")}}
theirs = {{k: v for k, v in ref.items() if k != "crs_wkt"}}
assert "grid_mapping_name" in mine, attrs
assert set(mine) == set(theirs), (sorted(set(mine) ^ set(theirs)))
def same(a, b):
    if isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(b, float) or isinstance(a, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b
bad = [(k, mine[k], theirs[k]) for k in theirs if not same(mine[k], theirs[k])]
assert not bad, bad
v = xr.open_zarr({g:?}, consolidated=False)[{ds:?}]
print(v.rio.crs.to_epsg(), mine["grid_mapping_name"])
"#,
                g = s(&group),
            );
            let got = py(&code);
            assert!(got.starts_with(&format!("{epsg} ")), "{ds}: {got}");
        }
    }
}
