//! Independent readers open what `convert` writes: DuckDB reads the Parquet tiles, xarray +
//! rioxarray read the Zarr v3 group, and Debian's GDAL 3.6 (gdalinfo and the gdal crate, which
//! links the same library) reads the Zarr v2 group georeferenced.

use crate::common::*;
use std::path::Path;

/// An Int16 raster on a 0.1 degree grid (aligned, so it converts as passthrough), with some
/// nodata cells. Returns the values.
fn int16_source(path: &Path, width: usize, height: usize) -> (RasterSpec, Vec<i16>) {
    let spec = RasterSpec { x0: -20.0, y0: 60.0, nodata: Some(-9999.0), ..RasterSpec::geographic(width, height, 0.1) };
    let mut next = lcg(7);
    let values: Vec<i16> =
        (0..width * height).map(|_| if next() % 11 == 0 { -9999 } else { (next() % 2000) as i16 - 500 }).collect();
    write_tif(path, &spec, values.clone());
    (spec, values)
}

/// A Float32 raster with NaN cells and numeric nodata cells, on a 0.25 degree grid.
fn float_source(path: &Path, width: usize, height: usize) -> (RasterSpec, Vec<f32>) {
    let spec = RasterSpec { nodata: Some(-9999.0), ..RasterSpec::geographic(width, height, 0.25) };
    let mut next = lcg(11);
    let values: Vec<f32> = (0..width * height)
        .map(|_| match next() % 13 {
            0 => f32::NAN,
            1 => -9999.0,
            _ => (next() % 100_000) as f32 / 7.0 - 3000.0,
        })
        .collect();
    write_tif(path, &spec, values.clone());
    (spec, values)
}

#[test]
fn duckdb_reads_parquet_tiles() {
    if !require(&[Pg, Python]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("plants.tif");
    let (spec, values) = int16_source(&src, 301, 211);
    let out = dir.path().join("staging");
    // Passthrough keeps Int16; average gives Float32; sum gives Float64.
    for (name, extra, value_type) in [
        ("pass", vec![], "SMALLINT"),
        ("avg", vec!["--resolution", "0.3", "--method", "average"], "FLOAT"),
        ("total", vec!["--resolution", "0.3", "--method", "sum"], "DOUBLE"),
    ] {
        let mut args =
            vec!["convert", s(&src), "--name", name, "--out", s(&out), "--format", "parquet", "--window", "64"];
        args.extend(extra);
        ok(&args);
        let m = manifest(&out, name);
        assert_eq!(m["status"], "complete");
        validate_dataset_json(&out, name);
        let glob = out.join(name).join("tiles/*.parquet");
        let glob = s(&glob);

        let row = duckdb_row(&format!("SELECT count(*), sum(value)::DOUBLE FROM read_parquet('{glob}')"));
        let (count, sum) = row.split_once('|').unwrap();
        assert_eq!(count.parse::<u64>().unwrap(), m["row_count"].as_u64().unwrap(), "{name}: count");
        let sum: f64 = sum.parse().unwrap();
        let want = m["value_sum"].as_f64().unwrap();
        assert!((sum - want).abs() <= 1e-9 * want.abs().max(1.0), "{name}: DuckDB sum {sum} vs dataset.json {want}");

        let cols = py(&format!(
            "{}for r in con.execute(\"DESCRIBE SELECT * FROM read_parquet('{glob}')\").fetchall():\n    print(r[0], r[1])",
            duckdb_prelude()
        ));
        assert_eq!(
            cols.lines().collect::<Vec<_>>(),
            ["row_idx INTEGER", "col_idx INTEGER", "x DOUBLE", "y DOUBLE", &format!("value {value_type}")],
            "{name}: columns"
        );

        // The grid in each tile's key-value metadata, and it is this dataset's grid.
        let first_tile = m["tiles"].as_array().unwrap().iter().find_map(|t| t["path"].as_str()).unwrap();
        let kv = py(&format!(
            "{}import json\nrows = con.execute(\"SELECT key::VARCHAR, value FROM parquet_kv_metadata('{}')\").fetchall()\n\
             g = [json.loads(bytes(v).decode()) for k, v in rows if k == 'rasterstage:grid']\n\
             print(len(g), g[0]['dataset'], g[0]['grid']['dx'], g[0]['grid']['width'])",
            duckdb_prelude(),
            out.join(name).join(first_tile).display()
        ));
        let grid = &m["grid"];
        assert_eq!(kv, format!("1 {name} {} {}", grid["dx"].as_f64().unwrap(), grid["width"]), "{name}: kv metadata");
    }

    // Cell centres, checked by hand on the passthrough output: row 3, column 5 of a grid whose
    // top-left corner is (-20, 60) with 0.1 degree cells.
    let (r, c) = (3usize, 5usize);
    assert_ne!(values[r * spec.width + c], -9999, "fixture: pick a valid cell");
    let glob = out.join("pass").join("tiles/*.parquet");
    let row = duckdb_row(&format!(
        "SELECT x, y, value FROM read_parquet('{}') WHERE row_idx = {r} AND col_idx = {c}",
        s(&glob)
    ));
    let want_x = -20.0 + (c as f64 + 0.5) * 0.1;
    let want_y = 60.0 + (r as f64 + 0.5) * -0.1;
    let parts: Vec<f64> = row.split('|').map(|v| v.parse().unwrap()).collect();
    assert!((parts[0] - -19.45).abs() < 1e-9 && (parts[1] - 59.65).abs() < 1e-9, "centre of (3, 5): {row}");
    assert_eq!((parts[0], parts[1]), (want_x, want_y), "one formula for centres");
    assert_eq!(parts[2], values[r * spec.width + c] as f64);
    // Nodata cells are not rows.
    let nodata_rows = duckdb_row(&format!("SELECT count(*) FROM read_parquet('{}') WHERE value = -9999", s(&glob)));
    assert_eq!(nodata_rows, "0");
    let valid = values.iter().filter(|v| **v != -9999).count();
    assert_eq!(manifest(&out, "pass")["row_count"].as_u64().unwrap(), valid as u64);
}

#[test]
fn xarray_rioxarray_read_zarr_v3() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("temperature.tif");
    let (spec, _) = float_source(&src, 403, 257);
    let out = dir.path().join("staging");
    ok(&["convert", s(&src), "--name", "temp", "--out", s(&out), "--format", "zarr", "--window", "128"]);
    let m = manifest(&out, "temp");
    assert_eq!(m["kind"]["raster"]["method"], "passthrough");
    assert_eq!(m["format"]["zarr"]["version"], 3);
    validate_dataset_json(&out, "temp");
    let zarr = out.join("temp").join("temp.zarr");
    let code = format!(
        r#"
import warnings
import numpy as np, xarray as xr, rioxarray, rasterio
with rasterio.open({src:?}) as f:
    a = f.read(1)
for kw in (dict(consolidated=False), dict()):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr({zarr:?}, **kw)
    v = ds["temp"]
    assert v.dims == ("y", "x"), v.dims
    assert v.shape == a.shape, (v.shape, a.shape)
    assert v.rio.crs is not None, "rio.crs is None"
    assert v.rio.crs.to_epsg() == 4326, v.rio.crs
    t = tuple(v.rio.transform())[:6]
    want = ({dx}, 0.0, {x0}, 0.0, {dy}, {y0})
    assert np.allclose(t, want, rtol=0, atol=1e-12), (t, want)
    assert np.allclose(ds.x.values, {x0} + (np.arange({w}) + 0.5) * {dx}, rtol=0, atol=1e-9)
    assert np.allclose(ds.y.values, {y0} + (np.arange({h}) + 0.5) * {dy}, rtol=0, atol=1e-9)
    assert v.rio.nodata is not None and np.isnan(v.rio.nodata), v.rio.nodata
    assert v.rio.encoded_nodata == -9999, v.rio.encoded_nodata
    z = v.values
    nodata = np.isnan(a) | (a == -9999)
    assert np.array_equal(z[~nodata], a[~nodata]), "valid cells differ"
    assert np.all(np.isnan(z[nodata])), "nodata cells must read as NaN"
print("ok")
"#,
        src = s(&src),
        zarr = s(&zarr),
        dx = spec.res,
        dy = -spec.res,
        x0 = spec.x0,
        y0 = spec.y0,
        w = spec.width,
        h = spec.height,
    );
    assert_eq!(py(&code), "ok");
}

/// Reads band 1 of a GDAL dataset with the gdal crate (Debian's GDAL 3.6, like gdalinfo).
fn gdal_read_f64(path: &Path) -> (Vec<f64>, [f64; 6], (usize, usize), String) {
    let ds = gdal::Dataset::open(path).unwrap_or_else(|e| panic!("GDAL cannot open {}: {e}", path.display()));
    let (w, h) = ds.raster_size();
    let band = ds.rasterband(1).unwrap();
    let buf = band.read_as::<f64>((0, 0), (w, h), (w, h), None).unwrap();
    let wkt = ds.spatial_ref().map(|s| s.to_wkt().unwrap()).unwrap_or_default();
    (buf.data().to_vec(), ds.geo_transform().unwrap(), (w, h), wkt)
}

fn gdalinfo_json(path: &Path) -> serde_json::Value {
    let out = std::process::Command::new("gdalinfo").arg("-json").arg(path).output().unwrap();
    assert!(out.status.success(), "gdalinfo {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_geotransform(info: &serde_json::Value, want: [f64; 6]) {
    let gt: Vec<f64> = info["geoTransform"]
        .as_array()
        .expect("gdalinfo shows a geotransform")
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    for (a, b) in gt.iter().zip(want) {
        assert!((a - b).abs() < 1e-9, "geotransform {gt:?}, want {want:?}");
    }
    let wkt = info["coordinateSystem"]["wkt"].as_str().expect("gdalinfo shows a CRS");
    assert!(wkt.contains("ID[\"EPSG\",4326]"), "CRS is not EPSG:4326: {wkt}");
}

#[test]
fn gdal_reads_zarr_v2() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("richness.tif");
    let (spec, values) = int16_source(&src, 333, 190);
    let out = dir.path().join("staging");
    ok(&[
        "convert",
        s(&src),
        "--name",
        "rich",
        "--out",
        s(&out),
        "--format",
        "zarr",
        "--zarr-version",
        "2",
        "--window",
        "100",
    ]);
    let m = manifest(&out, "rich");
    assert_eq!(
        (m["kind"]["raster"]["method"].as_str(), m["format"]["zarr"]["version"].as_u64()),
        (Some("passthrough"), Some(2))
    );
    validate_dataset_json(&out, "rich");
    let zarr = out.join("rich").join("rich.zarr");
    let gt = [spec.x0, spec.res, 0.0, spec.y0, 0.0, -spec.res];
    let info = gdalinfo_json(&zarr);
    assert_geotransform(&info, gt);
    assert_eq!(info["size"], serde_json::json!([spec.width, spec.height]));
    assert_eq!(info["bands"][0]["type"], "Int16");

    // GDAL reads the values back exactly (nodata cells hold the fill value, -9999).
    let (got, got_gt, size, _) = gdal_read_f64(&zarr);
    assert_eq!(size, (spec.width, spec.height));
    // GDAL 3.6 derives the geotransform from the x/y centre arrays: equal to ~1e-15.
    assert!(got_gt.iter().zip(gt).all(|(a, b)| (a - b).abs() < 1e-9), "{got_gt:?} vs {gt:?}");
    assert!(got.iter().zip(&values).all(|(a, b)| *a == *b as f64), "GDAL reads other values than the source");

    // zarr-python reads the v2 group too.
    let code = format!(
        "import numpy as np, zarr, rasterio\n\
         g = zarr.open_group({zarr:?}, mode='r')\n\
         z = g['rich'][:]\n\
         a = rasterio.open({src:?}).read(1)\n\
         assert g['rich'].metadata.zarr_format == 2\n\
         assert np.array_equal(z, a), 'values differ'\n\
         assert g['rich'].fill_value == -9999\n\
         print('ok')",
        zarr = s(&zarr),
        src = s(&src),
    );
    assert_eq!(py(&code), "ok");

    // A Float32 average on a coarser grid: gdalinfo shows its geotransform and CRS too.
    ok(&[
        "convert",
        s(&src),
        "--name",
        "rich_avg",
        "--out",
        s(&out),
        "--format",
        "zarr",
        "--zarr-version",
        "2",
        "--resolution",
        "0.5",
        "--method",
        "average",
        "--window",
        "16",
    ]);
    let m = manifest(&out, "rich_avg");
    assert_eq!(m["kind"]["raster"]["dtype"], "Float32");
    validate_dataset_json(&out, "rich_avg");
    let g = &m["grid"];
    let gt = [g["x0"].as_f64().unwrap(), 0.5, 0.0, g["y0"].as_f64().unwrap(), 0.0, -0.5];
    let zarr = out.join("rich_avg").join("rich_avg.zarr");
    let info = gdalinfo_json(&zarr);
    assert_geotransform(&info, gt);
    assert_eq!(info["bands"][0]["type"], "Float32");
    assert_eq!(info["size"], serde_json::json!([g["width"], g["height"]]));
    // GDAL's values agree with dataset.json's total (nodata = NaN fill for Float32 averages).
    let (got, _, _, _) = gdal_read_f64(&zarr);
    let nodata = m["kind"]["raster"]["nodata"].clone();
    let valid: Vec<f64> =
        got.into_iter().filter(|v| !v.is_nan() && nodata.as_f64().is_none_or(|nd| *v != nd)).collect();
    assert_eq!(valid.len() as u64, m["row_count"].as_u64().unwrap());
    let sum: f64 = valid.iter().sum();
    let want = m["value_sum"].as_f64().unwrap();
    assert!((sum - want).abs() <= 1e-6 * want.abs().max(1.0), "GDAL sum {sum} vs {want}");
}

#[test]
fn projected_crs_reaches_every_reader() {
    if !require(&[Python]) {
        return;
    }
    // Reprojected to Web Mercator: GDAL 3.6 (v2) and rioxarray (v3) see EPSG:3857 and the
    // grid dataset.json describes; DuckDB's x/y are metres on that grid.
    let dir = tmp();
    let src = dir.path().join("plants.tif");
    int16_source(&src, 150, 100);
    let out = dir.path().join("staging");
    let common = ["--target-crs", "EPSG:3857", "--resolution", "20000", "--method", "average", "--window", "32"];
    for (name, format, version) in [("merc_v2", "zarr", "2"), ("merc_v3", "zarr", "3"), ("merc_pq", "parquet", "3")] {
        let mut args = vec!["convert", s(&src), "--name", name, "--out", s(&out), "--format", format];
        args.extend(["--zarr-version", version]);
        args.extend(common);
        ok(&args);
        validate_dataset_json(&out, name);
    }
    let g = manifest(&out, "merc_v2")["grid"].clone();
    assert_eq!(g["epsg"], 3857);
    let (x0, y0) = (g["x0"].as_f64().unwrap(), g["y0"].as_f64().unwrap());
    assert_eq!(manifest(&out, "merc_v3")["grid"], g, "same grid whatever the format");

    let info = gdalinfo_json(&out.join("merc_v2/merc_v2.zarr"));
    let gt: Vec<f64> = info["geoTransform"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let want = [x0, 20000.0, 0.0, y0, 0.0, -20000.0];
    assert!(gt.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{gt:?} vs {want:?}");
    let wkt = info["coordinateSystem"]["wkt"].as_str().unwrap();
    assert!(wkt.contains("ID[\"EPSG\",3857]"), "{wkt}");

    let code = format!(
        "import warnings, xarray as xr, rioxarray\n\
         v = xr.open_zarr({z:?}, consolidated=False)['merc_v3']\n\
         t = tuple(v.rio.transform())[:6]\n\
         print(v.rio.crs.to_epsg(), all(abs(a - b) < 1e-6 for a, b in zip(t, ({want:?}))))",
        z = s(&out.join("merc_v3/merc_v3.zarr")),
        want = (want[1], want[2], want[0], want[4], want[5], want[3]),
    );
    assert_eq!(py(&code), "3857 True");

    let glob = out.join("merc_pq/tiles/*.parquet");
    let row = duckdb_row(&format!("SELECT x, y FROM read_parquet('{}') ORDER BY row_idx, col_idx LIMIT 1", s(&glob)));
    let xy: Vec<f64> = row.split('|').map(|v| v.parse().unwrap()).collect();
    // The first valid cell is a centre of the Mercator grid: an odd multiple of half a cell.
    let (fc, fr) = ((xy[0] - x0) / 20000.0 - 0.5, (y0 - xy[1]) / 20000.0 - 0.5);
    assert!((fc - fc.round()).abs() < 1e-9 && (fr - fr.round()).abs() < 1e-9, "{row} is not a cell centre");
}

#[test]
fn source_without_nodata_keeps_every_value() {
    if !require(&[Pg, Python]) {
        return;
    }
    // A Byte raster with no nodata where 0 is a real value (a count): no reader may take 0
    // for nodata.
    let dir = tmp();
    let src = dir.path().join("counts.tif");
    let spec = RasterSpec::geographic(90, 70, 0.5);
    let values: Vec<u8> = (0..90 * 70).map(|i| (i % 5) as u8).collect();
    let zeros = values.iter().filter(|v| **v == 0).count();
    write_tif(&src, &spec, values);
    let out = dir.path().join("staging");
    for (name, version) in [("counts_v2", "2"), ("counts_v3", "3")] {
        ok(&[
            "convert",
            s(&src),
            "--name",
            name,
            "--out",
            s(&out),
            "--format",
            "zarr",
            "--zarr-version",
            version,
            "--window",
            "32",
        ]);
        let m = manifest(&out, name);
        assert_eq!((m["kind"]["raster"]["nodata"].is_null(), m["row_count"].as_u64()), (true, Some(90 * 70)));
        validate_dataset_json(&out, name);
        let code = format!(
            "import numpy as np, xarray as xr\n\
             v = xr.open_zarr({z:?}, consolidated=False)[{name:?}].values\n\
             print(int(np.isnan(v).sum()) if v.dtype.kind == 'f' else 0, int((v == 0).sum()))",
            z = s(&out.join(name).join(format!("{name}.zarr"))),
        );
        assert_eq!(py(&code), format!("0 {zeros}"), "{name}: xarray masks valid zeros");
    }
    let zarr = out.join("counts_v2/counts_v2.zarr");
    let info = gdalinfo_json(&zarr);
    assert!(info["bands"][0].get("noDataValue").is_none(), "GDAL sees a nodata: {}", info["bands"][0]);
    ok(&["convert", s(&src), "--name", "counts_pq", "--out", s(&out), "--window", "32"]);
    let glob = out.join("counts_pq/tiles/*.parquet");
    assert_eq!(
        duckdb_row(&format!("SELECT count(*) FROM read_parquet('{}') WHERE value = 0", s(&glob))),
        zeros.to_string()
    );
}

#[test]
fn xarray_masks_integer_nodata_in_zarr_v3() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("richness.tif");
    int16_source(&src, 120, 90);
    let out = dir.path().join("staging");
    ok(&["convert", s(&src), "--name", "rich", "--out", s(&out), "--format", "zarr", "--window", "32"]);
    let code = format!(
        "import numpy as np, xarray as xr, rioxarray, rasterio\n\
         a = rasterio.open({src:?}).read(1)\n\
         v = xr.open_zarr({z:?}, consolidated=False)['rich']\n\
         assert v.rio.encoded_nodata == -9999, v.rio.encoded_nodata\n\
         z = v.values\n\
         assert np.array_equal(np.isnan(z), a == -9999)\n\
         assert np.array_equal(z[a != -9999], a[a != -9999])\n\
         raw = xr.open_zarr({z:?}, consolidated=False, mask_and_scale=False)['rich'].values\n\
         assert raw.dtype == np.int16 and np.array_equal(raw, a)\n\
         print('ok')",
        src = s(&src),
        z = s(&out.join("rich/rich.zarr")),
    );
    assert_eq!(py(&code), "ok");
}

#[test]
fn pyarrow_sees_min_max_of_float_columns() {
    if !require(&[Python]) {
        return;
    }
    // pyarrow (Arrow C++, so pandas, Dask and GeoPandas) ignores statistics under the IEEE-754
    // total column order that parquet-rs declares for floats; the tiles declare the
    // type-defined order, so pyarrow can skip tiles by x, y and value.
    let dir = tmp();
    let src = dir.path().join("field.tif");
    float_source(&src, 97, 61);
    let out = dir.path().join("staging");
    ok(&[
        "convert",
        s(&src),
        "--name",
        "field",
        "--out",
        s(&out),
        "--resolution",
        "0.5",
        "--method",
        "average",
        "--window",
        "16",
    ]);
    let glob = out.join("field").join("tiles");
    let report = py(&format!(
        "import glob, pyarrow.parquet as pq, pyarrow.compute as pc\n\
         bad = []\n\
         files = sorted(glob.glob('{}/*.parquet'))\n\
         for f in files:\n\
         \x20   md = pq.ParquetFile(f).metadata\n\
         \x20   t = pq.read_table(f)\n\
         \x20   for i in range(md.num_columns):\n\
         \x20       c = md.row_group(0).column(i)\n\
         \x20       name = c.path_in_schema\n\
         \x20       st = c.statistics\n\
         \x20       if st is None or not st.has_min_max:\n\
         \x20           bad.append((f, name, 'no min/max'))\n\
         \x20           continue\n\
         \x20       mm = pc.min_max(t[name]).as_py()\n\
         \x20       if (st.min, st.max) != (mm['min'], mm['max']):\n\
         \x20           bad.append((f, name, st.min, st.max, mm))\n\
         print(len(files), bad)",
        s(&glob)
    ));
    let (n, bad) = report.split_once(' ').unwrap();
    assert!(n.parse::<usize>().unwrap() > 1, "{report}");
    assert_eq!(bad, "[]", "pyarrow statistics: {report}");
}

/// The double of the decimal `(2 * origin + (2i + 1) * step) / 2` with origin and step in
/// thousandths: what a person writes for the centre of cell `i`.
fn decimal_centre(origin_milli: i64, step_milli: i64, i: usize) -> f64 {
    let twice = 2 * origin_milli + (2 * i as i64 + 1) * step_milli;
    format!("{}e-4", twice * 5).parse().unwrap()
}

#[test]
fn cell_centres_are_the_decimals_people_write() {
    if !require(&[Python]) {
        return;
    }
    // A 0.05 and a 0.01 degree grid, aligned (-tap) from a source whose extent is not on
    // either lattice; every x and y in the tiles must be the double nearest its decimal value
    // (44.275, not 44.275000000000006).
    let dir = tmp();
    let src = dir.path().join("field.tif");
    let spec = RasterSpec { x0: -10.013, y0: 60.037, ..RasterSpec::geographic(311, 257, 0.0075) };
    let mut next = lcg(5);
    write_tif(&src, &spec, (0..311 * 257).map(|_| (next() % 1000) as f32).collect());
    let out = dir.path().join("staging");
    for (name, res, step_milli) in [("c05", "0.05", 50i64), ("c01", "0.01", 10)] {
        ok(&["convert", s(&src), "--name", name, "--out", s(&out), "--resolution", res, "--method", "average", "-q"]);
        let m = manifest(&out, name);
        let g = &m["grid"];
        let (x0, y0) = (g["x0"].as_f64().unwrap(), g["y0"].as_f64().unwrap());
        // The aligned edges themselves are decimals.
        let (x0m, y0m) = ((x0 * 1000.0).round() as i64, (y0 * 1000.0).round() as i64);
        assert_eq!((x0, y0), (x0m as f64 / 1000.0, y0m as f64 / 1000.0), "{name}: origin {x0}, {y0}");
        let glob = out.join(name).join("tiles/*.parquet");
        for (axis, idx, origin, step) in [("x", "col_idx", x0m, step_milli), ("y", "row_idx", y0m, -step_milli)] {
            let rows = py(&format!(
                "{}for i, v in con.execute(\"SELECT DISTINCT {idx}, {axis} FROM read_parquet('{}') ORDER BY 1\").fetchall():\n    print(i, repr(v))",
                duckdb_prelude(),
                s(&glob)
            ));
            let mut n = 0;
            for line in rows.lines() {
                let (i, v) = line.split_once(' ').unwrap();
                let (i, v): (usize, f64) = (i.parse().unwrap(), v.parse().unwrap());
                assert_eq!(v, decimal_centre(origin, step, i), "{name}: {axis} of {idx} {i}");
                n += 1;
            }
            assert!(n > 10, "{name}: {axis}: {rows}");
        }
    }
}
