//! Parquet tiles for the readers that need more than the plain tiles: GeoParquet
//! (`--geoparquet`, read by GeoPandas with a bbox filter, DuckDB, and loaded like plain tiles)
//! and the compatible encodings (`--parquet-compat`, read by fastparquet).

use crate::common::*;
use crate::load::{rs_ok, LoadSchema};
use std::path::Path;

/// An Int16 raster on a 0.1 degree grid with nodata cells.
fn int16_source(path: &Path, width: usize, height: usize) -> RasterSpec {
    let spec = RasterSpec { x0: -20.0, y0: 60.0, nodata: Some(-9999.0), ..RasterSpec::geographic(width, height, 0.1) };
    let mut next = lcg(5);
    let values: Vec<i16> =
        (0..width * height).map(|_| if next() % 9 == 0 { -9999 } else { (next() % 3000) as i16 - 700 }).collect();
    write_tif(path, &spec, values);
    spec
}

/// Checks a GeoParquet dataset with GeoPandas against DuckDB on the x/y columns: the rows a
/// `bbox=` read returns are exactly the cells whose centre lies in the box, and the CRS is
/// `epsg`. Returns how many rows the box held.
fn geopandas_matches_duckdb(out: &Path, name: &str, bbox: [f64; 4], epsg: u32, encoding: &str) -> usize {
    let tiles = out.join(name).join("tiles");
    let code = format!(
        "{prelude}import json, warnings, geopandas, pyarrow.parquet as pq, shapely\n\
         tiles = {tiles:?}\n\
         b = {bbox:?}\n\
         g = geopandas.read_parquet(tiles, bbox=tuple(b))\n\
         got = sorted(zip(g.row_idx.tolist(), g.col_idx.tolist()))\n\
         want = con.execute(f\"SELECT row_idx, col_idx FROM read_parquet('{{tiles}}/*.parquet') \
             WHERE x BETWEEN {{b[0]}} AND {{b[2]}} AND y BETWEEN {{b[1]}} AND {{b[3]}} ORDER BY 1, 2\").fetchall()\n\
         assert got == [tuple(r) for r in want], (len(got), len(want))\n\
         assert g.crs.to_epsg() == {epsg}, g.crs\n\
         assert (g.geometry.x == g.x).all() and (g.geometry.y == g.y).all()\n\
         assert set(g.geometry.geom_type) == {{'Point'}}\n\
         f = sorted(__import__('glob').glob(tiles + '/*.parquet'))[0]\n\
         geo = json.loads(pq.read_metadata(f).metadata[b'geo'])\n\
         col = geo['columns']['geometry']\n\
         assert geo['version'] == '1.1.0' and geo['primary_column'] == 'geometry', geo\n\
         assert col['encoding'] == {encoding:?} and col['geometry_types'] == ['Point'], col\n\
         assert col['covering'] == {{'bbox': {{k: ['bbox', k] for k in ('xmin', 'ymin', 'xmax', 'ymax')}}}}, col\n\
         t = pq.read_table(f, columns=['x', 'y']).to_pydict()\n\
         assert col['bbox'] == [min(t['x']), min(t['y']), max(t['x']), max(t['y'])], col\n\
         everything = geopandas.read_parquet(tiles)\n\
         n = con.execute(f\"SELECT count(*) FROM read_parquet('{{tiles}}/*.parquet')\").fetchone()[0]\n\
         assert len(everything) == n\n\
         print(len(got))",
        prelude = duckdb_prelude(),
        tiles = s(&tiles),
    );
    py(&code).parse().unwrap()
}

/// Dataset name, extra flags, EPSG, geometry encoding, bbox.
type Case<'a> = (&'a str, &'a [&'a str], u32, &'a str, [f64; 4]);

#[test]
fn geopandas_reads_geoparquet_tiles_with_a_bbox_filter() {
    if !require(&[Pg, Python]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("richness.tif");
    int16_source(&src, 230, 170);
    let out = dir.path().join("staging");
    let base = ["--out", s(&out), "--window", "64"];
    // Both geometry encodings, on the source grid and reprojected to EPSG:3035 (LAEA Europe).
    let cases: [Case; 3] = [
        ("geo_wkb", &["--geoparquet"], 4326, "WKB", [-15.33, 47.21, -8.07, 51.96]),
        (
            "geo_point",
            &["--geoparquet", "--geoparquet-encoding", "point"],
            4326,
            "point",
            [-15.33, 47.21, -8.07, 51.96],
        ),
        (
            "geo_laea",
            &["--geoparquet", "--target-crs", "EPSG:3035", "--resolution", "25000", "--method", "average"],
            3035,
            "WKB",
            [2_700_000.0, 3_300_000.0, 3_100_000.0, 3_700_000.0],
        ),
    ];
    for (name, extra, epsg, encoding, bbox) in cases {
        let mut args = vec!["convert", s(&src), "--name", name];
        args.extend(base);
        args.extend(extra);
        ok(&args);
        let m = manifest(&out, name);
        assert_eq!(
            m["format"]["parquet"]["geoparquet"],
            encoding.to_lowercase(),
            "{name}: dataset.json records the encoding"
        );
        validate_dataset_json(&out, name);
        let n = geopandas_matches_duckdb(&out, name, bbox, epsg, encoding);
        let total = m["row_count"].as_u64().unwrap() as usize;
        assert!(n > 0 && n < total, "{name}: the box holds {n} of {total} cells: pick another box");
    }
    // Without the flag, the tiles are what they were: no geometry, no geo metadata.
    ok(&["convert", s(&src), "--name", "plain", "--out", s(&out), "--window", "64"]);
    assert!(manifest(&out, "plain").get("geoparquet").is_none());
    let cols = duckdb_row(&format!(
        "SELECT string_agg(column_name, ',') FROM (DESCRIBE SELECT * FROM read_parquet('{}'))",
        s(&out.join("plain/tiles/*.parquet"))
    ));
    assert_eq!(cols, "row_idx,col_idx,x,y,value");
}

#[test]
fn geoparquet_tiles_load_and_merge_like_plain_tiles() {
    if !require(&[Pg, Python]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("richness.tif");
    int16_source(&src, 150, 90);
    let out = dir.path().join("staging");
    for (name, extra) in [
        ("plain", vec![]),
        ("geo", vec!["--geoparquet"]),
        ("geo_pt", vec!["--geoparquet", "--geoparquet-encoding", "point"]),
    ] {
        let mut args = vec!["convert", s(&src), "--name", name, "--out", s(&out), "--window", "32"];
        args.extend(extra);
        ok(&args);
    }
    let sc = Schema::new("geoparquet");
    rs_ok(&["load", "--from", s(&out), "--schema", &sc.name]);
    let plain = sc.count("plain");
    assert!(plain > 0);
    for name in ["geo", "geo_pt"] {
        let diff = sc.one_i64(&format!(
            "SELECT count(*) FROM ((SELECT row_idx, col_idx, x, y, value FROM {a} EXCEPT ALL SELECT row_idx, col_idx, x, y, value FROM {b}) \
             UNION ALL (SELECT row_idx, col_idx, x, y, value FROM {b} EXCEPT ALL SELECT row_idx, col_idx, x, y, value FROM {a})) d",
            a = sc.q("plain"),
            b = sc.q(name)
        ));
        assert_eq!((sc.count(name), diff), (plain, 0), "{name} loads the same rows as plain tiles");
    }
    rs_ok(&["verify", "--from", s(&out), "--schema", &sc.name]);
    // merge reads GeoParquet inputs as it reads plain ones.
    ok(&["merge", "--from", s(&out), "--datasets", "plain,geo", "--name", "both", "-q"]);
    let row = duckdb_row(&format!(
        "SELECT count(*), count(*) FILTER (WHERE plain IS DISTINCT FROM geo) FROM read_parquet('{}')",
        s(&out.join("both/tiles/*.parquet"))
    ));
    assert_eq!(row, format!("{plain}|0"));
}

#[test]
fn geoparquet_is_refused_for_zarr() {
    let dir = tmp();
    let src = dir.path().join("r.tif");
    int16_source(&src, 40, 30);
    let out = dir.path().join("staging");
    let err = fails(&["convert", s(&src), "--out", s(&out), "--format", "zarr", "--geoparquet"]);
    let line = one_error_line(&err, &["geoparquet", "--format parquet"]);
    assert!(!line.is_empty());
    assert!(!out.join("r").exists(), "nothing is written");
}

#[test]
fn fastparquet_reads_float_tiles_written_with_parquet_compat() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("field.tif");
    let spec = RasterSpec { nodata: Some(-9999.0), ..RasterSpec::geographic(130, 90, 0.25) };
    let mut next = lcg(3);
    let values: Vec<f32> = (0..spec.width * spec.height)
        .map(|_| if next() % 7 == 0 { -9999.0 } else { (next() % 50_000) as f32 / 3.0 })
        .collect();
    write_tif(&src, &spec, values);
    let out = dir.path().join("staging");
    for (name, extra) in [("plain", vec![]), ("compat", vec!["--parquet-compat"])] {
        let mut args =
            vec!["convert", s(&src), "--name", name, "--out", s(&out), "--window", "64", "--resolution", "0.5"];
        args.extend(["--method", "average"]);
        args.extend(extra);
        ok(&args);
        validate_dataset_json(&out, name);
    }
    assert_eq!(manifest(&out, "compat")["format"]["parquet"]["compat"], true);
    assert_eq!(manifest(&out, "compat")["kind"]["raster"]["dtype"], "Float32");
    // fastparquet reads every compat tile, cell for cell what DuckDB reads; the default tiles
    // (BYTE_STREAM_SPLIT values) it cannot decode.
    let cells = parquet_cells(&out, "compat");
    assert_eq!(cells, parquet_cells(&out, "plain"));
    let code = format!(
        "import glob, fastparquet\n\
         rows = []\n\
         for f in sorted(glob.glob({compat:?} + '/*.parquet')):\n\
         \x20   d = fastparquet.ParquetFile(f).to_pandas()\n\
         \x20   rows += [(int(r), int(c), float(v)) for r, c, v in zip(d.row_idx, d.col_idx, d.value)]\n\
         for r, c, v in sorted(rows):\n\
         \x20   print(r, c, repr(v))\n\
         try:\n\
         \x20   fastparquet.ParquetFile(sorted(glob.glob({plain:?} + '/*.parquet'))[0]).to_pandas()\n\
         \x20   print('plain read')\n\
         except Exception as e:\n\
         \x20   print('plain refused', e)",
        compat = s(&out.join("compat/tiles")),
        plain = s(&out.join("plain/tiles")),
    );
    let got = py(&code);
    let mut lines: Vec<&str> = got.lines().collect();
    let last = lines.pop().unwrap();
    assert!(last.starts_with("plain refused") && last.contains("Encoding 9"), "{last}");
    let fp: Vec<(i64, i64, f64)> = lines
        .iter()
        .map(|l| {
            let v: Vec<&str> = l.split_whitespace().collect();
            (v[0].parse().unwrap(), v[1].parse().unwrap(), v[2].parse().unwrap())
        })
        .collect();
    assert_eq!(fp, cells);
}
