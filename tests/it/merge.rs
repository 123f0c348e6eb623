//! `merge`: three generated datasets with different extents on one lattice, every merged cell
//! compared with the inputs; refusals of grids off the lattice; PostgreSQL (table, load of the
//! merged dataset, view); kill -9 and resume.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RES: f64 = 0.5;

/// One generated input: name, origin, shape, values as f64 (None = nodata).
struct Input {
    x0: f64,
    y0: f64,
    w: usize,
    h: usize,
    cells: Vec<Option<f64>>,
}

/// Writes the three inputs and converts them (window 16) into `root`:
/// - `a` Float32 40x30 at (-10, 60), nodata -9999, with zeros and a nodata block;
/// - `b` Int16 30x50 at (-5, 55): 10 columns right and 10 rows down, overlapping `a`;
/// - `c` Byte 20x20 at (20, 60): disjoint from both (the merged grid spans 80 columns).
fn inputs(dir: &Path, root: &Path) -> Vec<Input> {
    inputs_to(dir, &[s(root)])
}

/// [`inputs`], converted into each staging root of `roots` (folders or `s3://` URLs).
fn inputs_to(dir: &Path, roots: &[&str]) -> Vec<Input> {
    let mut out = Vec::new();
    let mut rnd = lcg(11);
    // a
    let (w, h) = (40, 30);
    let mut v: Vec<f32> = (0..w * h).map(|_| (rnd() % 2000) as f32 / 4.0 - 100.0).collect();
    for r in 0..h {
        for c in 0..w {
            if (r * 3 + c) % 7 == 0 {
                v[r * w + c] = 0.0;
            }
            if (5..12).contains(&r) && (20..40).contains(&c) {
                v[r * w + c] = -9999.0;
            }
        }
    }
    write_input(dir, roots, "a", -10.0, 60.0, w, h, Some(-9999.0), v.clone());
    out.push(Input {
        x0: -10.0,
        y0: 60.0,
        w,
        h,
        cells: v.iter().map(|&x| (x != -9999.0).then_some(x as f64)).collect(),
    });
    // b
    let (w, h) = (30, 50);
    let v: Vec<i16> = (0..w * h)
        .map(|i| {
            if i % 5 == 0 {
                0
            } else if i % 9 == 0 {
                -32768
            } else {
                (rnd() % 2000) as i16 - 1000
            }
        })
        .collect();
    write_input(dir, roots, "b", -5.0, 55.0, w, h, Some(-32768.0), v.clone());
    out.push(Input { x0: -5.0, y0: 55.0, w, h, cells: v.iter().map(|&x| (x != -32768).then_some(x as f64)).collect() });
    // c
    let (w, h) = (20, 20);
    let v: Vec<u8> = (0..w * h).map(|i| if i % 6 == 0 { 255 } else { (i % 200) as u8 }).collect();
    write_input(dir, roots, "c", 20.0, 60.0, w, h, Some(255.0), v.clone());
    out.push(Input { x0: 20.0, y0: 60.0, w, h, cells: v.iter().map(|&x| (x != 255).then_some(x as f64)).collect() });
    out
}

#[allow(clippy::too_many_arguments)]
fn write_input<T: gdal::raster::GdalType + Copy>(
    dir: &Path,
    roots: &[&str],
    name: &str,
    x0: f64,
    y0: f64,
    w: usize,
    h: usize,
    nodata: Option<f64>,
    v: Vec<T>,
) {
    let path = dir.join(format!("{name}.tif"));
    let spec = RasterSpec { width: w, height: h, x0, y0, res: RES, epsg: 4326, nodata, block: 16 };
    write_tif(&path, &spec, v);
    for root in roots {
        ok(&["convert", s(&path), "--name", name, "--out", root, "--window", "16", "-q"]);
    }
}

type Row = (i64, i64, f64, f64, Vec<Option<f64>>);

/// The merged rows expected from the inputs: grid origin (-10, 60), 80 x 60 cells.
fn expected(ins: &[Input], inner: bool) -> Vec<Row> {
    let mut cells: BTreeMap<(i64, i64), Vec<Option<f64>>> = BTreeMap::new();
    for (k, i) in ins.iter().enumerate() {
        let (or, oc) = (((60.0 - i.y0) / RES) as i64, ((i.x0 + 10.0) / RES) as i64);
        for r in 0..i.h {
            for c in 0..i.w {
                if let Some(v) = i.cells[r * i.w + c] {
                    cells.entry((r as i64 + or, c as i64 + oc)).or_insert_with(|| vec![None; ins.len()])[k] = Some(v);
                }
            }
        }
    }
    cells
        .into_iter()
        .filter(|(_, v)| !inner || v.iter().all(Option::is_some))
        .map(|((r, c), v)| (r, c, -10.0 + (c as f64 + 0.5) * RES, 60.0 + (r as f64 + 0.5) * -RES, v))
        .collect()
}

fn parse_rows(out: &str) -> Vec<Row> {
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let vals = f[4..].iter().map(|v| if *v == "None" { None } else { Some(v.parse().unwrap()) }).collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].parse().unwrap(), f[3].parse().unwrap(), vals)
        })
        .collect()
}

/// Every row of a merged Parquet dataset, read by DuckDB.
fn merged_rows(dir: &Path, cols: &[&str]) -> Vec<Row> {
    let sel: Vec<String> = cols.iter().map(|c| format!("{c}::DOUBLE")).collect();
    let out = py(&format!(
        "{}for row in con.execute(\"SELECT row_idx, col_idx, x, y, {} FROM read_parquet('{}/tiles/*.parquet') ORDER BY 1, 2\").fetchall():\n    print(*[repr(v) for v in row])",
        duckdb_prelude(),
        sel.join(", "),
        dir.display()
    ));
    parse_rows(&out)
}

/// Every cell of a merged Zarr group where any of `cols` has a value, read by xarray
/// (`open_zarr`: consolidated metadata, CF decoding, so a fill value reads as NaN), as rows
/// like the Parquet merge's, with x and y from the group's coordinates.
fn zarr_rows(group: &Path, cols: &[&str]) -> Vec<Row> {
    let out = py(&format!(
        r#"
import numpy as np, xarray as xr
ds = xr.open_zarr({g:?})
vs = [ds[c].values.astype("float64") for c in {cols:?}]
x, y = ds.x.values, ds.y.values
keep = np.zeros(vs[0].shape, bool)
for v in vs:
    keep |= ~np.isnan(v)
for r, c in zip(*np.nonzero(keep)):
    print(r, c, repr(float(x[c])), repr(float(y[r])), *["None" if np.isnan(v[r, c]) else repr(float(v[r, c])) for v in vs])
"#,
        g = s(group),
    ));
    parse_rows(&out)
}

fn merge_args<'a>(root: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["merge", "--from", s(root), "--datasets", "a,b,c", "--out", s(out), "-q"];
    a.extend_from_slice(extra);
    a
}

#[test]
fn merge_outer_and_inner_keep_every_cell() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let root = dir.path().join("staging");
    let ins = inputs(dir.path(), &root);
    let out = root.join("merged");
    let stdout = ok(&merge_args(&root, &out, &["--window", "24"]));
    assert!(stdout.contains("merged: 3 datasets merged (outer) onto 80x60"), "{stdout}");

    let got = merged_rows(&out, &["a", "b", "c"]);
    let want = expected(&ins, false);
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want, "every merged cell equals the inputs' cells");
    // Zeros are values: a and b both hold zeros, and they are all there.
    let zeros = got.iter().filter(|r| r.4.contains(&Some(0.0))).count();
    assert!(zeros > 100, "{zeros} rows with a zero");
    // Disjoint c: its rows have NULL a and b.
    assert!(got.iter().any(|r| r.4[2].is_some() && r.4[0].is_none() && r.4[1].is_none()));

    // The same cells as the input tiles, read by DuckDB from the inputs' own Parquet tiles.
    let a_cells = parquet_cells(&root, "a");
    let from_merged: Vec<(i64, i64, f64)> = got.iter().filter_map(|r| r.4[0].map(|v| (r.0, r.1, v))).collect();
    assert_eq!(from_merged, a_cells, "a sits at offset (0, 0)");
    let b_cells: Vec<(i64, i64, f64)> =
        parquet_cells(&root, "b").into_iter().map(|(r, c, v)| (r + 10, c + 10, v)).collect();
    let from_merged: Vec<(i64, i64, f64)> = got.iter().filter_map(|r| r.4[1].map(|v| (r.0, r.1, v))).collect();
    assert_eq!(from_merged, b_cells, "b sits at offset (10, 10)");

    // The merged dataset is a staged dataset: schema-valid, complete, inspectable.
    validate_dataset_json(&root, "merged");
    let m = manifest(&root, "merged");
    assert_eq!(m["status"], "complete");
    assert!(m["kind"]["merge"].is_object(), "a merge: {m}");
    assert_eq!(m["row_count"].as_u64().unwrap(), want.len() as u64);
    let cols: Vec<&str> =
        m["kind"]["merge"]["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(cols, ["a", "b", "c"]);
    assert_eq!(m["kind"]["merge"]["columns"][1]["offset"], serde_json::json!([10, 10]));
    assert_eq!(m["kind"]["merge"]["columns"][1]["dtype"], "Int16");
    let sum: f64 = want.iter().flat_map(|r| r.4.iter().flatten()).sum();
    assert!((m["value_sum"].as_f64().unwrap() - sum).abs() < 1e-6 * sum.abs().max(1.0));
    let shown = ok(&["inspect", s(&root)]);
    assert!(shown.lines().any(|l| l.starts_with("merged") && l.contains("complete") && l.contains("merge")), "{shown}");
    // The columns keep their types.
    let types = duckdb_row(&format!(
        "SELECT string_agg(column_type, ',' ORDER BY column_name) FROM (DESCRIBE SELECT a, b, c FROM read_parquet('{}/tiles/*.parquet'))",
        out.display()
    ));
    assert_eq!(types, "FLOAT,SMALLINT,UTINYINT");

    // A rerun does nothing.
    let again = ok(&merge_args(&root, &out, &["--window", "24"]));
    assert!(again.contains("(0 written now)"), "{again}");

    // --how inner: only cells valid in every input. a, b overlap but c is disjoint: none.
    let inner = root.join("inner");
    let stdout = ok(&merge_args(&root, &inner, &["--how", "inner"]));
    assert!(stdout.contains(" 0 rows"), "{stdout}");
    let inner2 = root.join("inner_ab");
    ok(&["merge", "--from", s(&root), "--datasets", "a,b", "--out", s(&inner2), "--how", "inner", "-q"]);
    let want: Vec<Row> = expected(&ins[..2], true);
    assert!(!want.is_empty());
    assert_eq!(merged_rows(&inner2, &["a", "b"]), want);
}

#[test]
fn merge_zarr_v3_and_v2_read_by_xarray_equal_the_inputs() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let root = dir.path().join("staging");
    let ins = inputs(dir.path(), &root);
    let want = expected(&ins, false);
    ok(&merge_args(&root, &root.join("pq"), &["--window", "24"]));
    let pq = manifest(&root, "pq");
    for v in ["3", "2"] {
        let name = format!("z{v}");
        let stdout =
            ok(&merge_args(&root, &root.join(&name), &["--window", "24", "--format", "zarr", "--zarr-version", v]));
        assert!(stdout.contains(&format!("{name}: 3 datasets merged (outer) onto 80x60")), "{stdout}");
        let group = root.join(&name).join(format!("{name}.zarr"));
        // Every cell of every array equals the inputs' (fill values decode to NaN).
        assert_eq!(zarr_rows(&group, &["a", "b", "c"]), want, "zarr v{v}");
        // One Dataset: a variable per input in its own type and fill value, CRS and
        // transform for rioxarray, chunks = merged windows; zarr-python sees the same group.
        let code = format!(
            r#"
import warnings
import numpy as np, xarray as xr, rioxarray, zarr
with warnings.catch_warnings():
    warnings.simplefilter("error")
    ds = xr.open_zarr({g:?})
assert sorted(ds.data_vars) == ["a", "b", "c"], list(ds.data_vars)
assert ds.rio.crs.to_epsg() == 4326, ds.rio.crs
for n, nodata in (("a", -9999), ("b", -32768), ("c", 255)):
    v = ds[n]
    assert v.dims == ("y", "x"), v.dims
    assert v.shape == (60, 80), v.shape
    assert v.rio.crs.to_epsg() == 4326, v.rio.crs
    assert tuple(v.rio.transform())[:6] == (0.5, 0.0, -10.0, 0.0, -0.5, 60.0), v.rio.transform()
    assert v.rio.encoded_nodata == nodata, (n, v.rio.encoded_nodata)
raw = xr.open_zarr({g:?}, mask_and_scale=False)
assert [str(raw[n].dtype) for n in "abc"] == ["float32", "int16", "uint8"], raw
g = zarr.open_group({g:?}, mode="r")
assert sorted(g.array_keys()) == ["a", "b", "c", "spatial_ref", "x", "y"], sorted(g.array_keys())
assert [g[n].fill_value for n in "abc"] == [-9999, -32768, 255], [g[n].fill_value for n in "abc"]
assert all(g[n].chunks == (24, 24) for n in "abc")
assert np.array_equal(g["b"][:10, :10], np.full((10, 10), -32768)), "b starts 10 rows and columns in"
print(g.metadata.zarr_format)
"#,
            g = s(&group)
        );
        assert_eq!(py(&code), v);

        // The same dataset.json totals and per-tile records as the Parquet merge.
        validate_dataset_json(&root, &name);
        let m = manifest(&root, &name);
        assert_eq!((m["status"].as_str(), m["format"]["zarr"].is_object()), (Some("complete"), true));
        assert_eq!(m["format"]["zarr"]["version"].as_u64(), v.parse().ok());
        assert_eq!(m["row_count"], pq["row_count"]);
        assert_eq!(m["value_sum"], pq["value_sum"]);
        assert_eq!(m["kind"]["merge"]["columns"], pq["kind"]["merge"]["columns"]);
        let per_tile = |m: &serde_json::Value| -> Vec<(serde_json::Value, serde_json::Value, serde_json::Value)> {
            m["tiles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| (t["id"].clone(), t["row_count"].clone(), t["value_sum"].clone()))
                .collect()
        };
        assert_eq!(per_tile(&m), per_tile(&pq));
        let shown = ok(&["inspect", s(&root)]);
        assert!(shown.lines().any(|l| l.starts_with(&name) && l.contains("complete") && l.contains("zarr")), "{shown}");
    }

    // --how inner: the cells not kept hold the fill value in every array, so the group
    // shows exactly the inner join's cells.
    let inner = root.join("zi");
    ok(&[
        "merge",
        "--from",
        s(&root),
        "--datasets",
        "a,b",
        "--out",
        s(&inner),
        "--how",
        "inner",
        "--format",
        "zarr",
        "-q",
    ]);
    let want = expected(&ins[..2], true);
    assert!(!want.is_empty());
    assert_eq!(zarr_rows(&inner.join("zi.zarr"), &["a", "b"]), want);
    assert_eq!(manifest(&root, "zi")["row_count"].as_u64(), Some(want.len() as u64));
}

#[test]
fn merge_zarr_refuses_inputs_without_a_fill_value() {
    let dir = tmp();
    let root = dir.path().join("staging");
    inputs(dir.path(), &root);
    // An Int16 raster without nodata: every value may be data.
    let path = dir.path().join("counts.tif");
    let spec = RasterSpec { width: 20, height: 20, x0: -10.0, y0: 60.0, res: RES, epsg: 4326, nodata: None, block: 16 };
    write_tif(&path, &spec, (0..400).map(|i| i as i16).collect::<Vec<_>>());
    ok(&["convert", s(&path), "--name", "counts", "--out", s(&root), "--window", "16", "-q"]);
    let out = root.join("m");
    let err = fails(&["merge", "--from", s(&root), "--datasets", "a,counts", "--out", s(&out), "--format", "zarr"]);
    one_error_line(
        &err,
        &["dataset counts is Int16 without a nodata value", "convert it again with --nodata", "--format parquet"],
    );
    assert!(!out.exists(), "nothing is written for a refused merge");
    // Parquet has NULL: the same merge works there, and a nodata makes Zarr work too.
    ok(&["merge", "--from", s(&root), "--datasets", "a,counts", "--out", s(&out), "-q"]);
    ok(&[
        "convert",
        s(&path),
        "--name",
        "counts",
        "--out",
        s(&root),
        "--window",
        "16",
        "--nodata",
        "-1",
        "--overwrite",
        "-q",
    ]);
    ok(&[
        "merge",
        "--from",
        s(&root),
        "--datasets",
        "a,counts",
        "--out",
        s(&root.join("mz")),
        "--format",
        "zarr",
        "-q",
    ]);
    let err = fails(&[
        "merge",
        "--from",
        s(&root),
        "--datasets",
        "a,b",
        "--out",
        s(&out),
        "--zarr-version",
        "4",
        "--format",
        "zarr",
    ]);
    one_error_line(&err, &["--zarr-version must be 2 or 3"]);
}

/// Converts a 10x10 Float32 raster at `(x0, y0)` with resolution `res` in `epsg` as `name`.
fn small(dir: &Path, root: &Path, name: &str, x0: f64, y0: f64, res: f64, epsg: u32) {
    let path = dir.join(format!("{name}.tif"));
    let spec = RasterSpec { width: 10, height: 10, x0, y0, res, epsg, nodata: None, block: 16 };
    write_tif(&path, &spec, vec![1.0f32; 100]);
    ok(&["convert", s(&path), "--name", name, "--out", s(root), "--no-align", "-q"]);
}

#[test]
fn grids_off_the_lattice_are_refused() {
    let dir = tmp();
    let root = dir.path().join("staging");
    small(dir.path(), &root, "plants", -10.0, 60.0, 0.5, 4326);
    small(dir.path(), &root, "shifted", -9.88, 59.75, 0.5, 4326);
    small(dir.path(), &root, "finer", -10.0, 60.0, 0.25, 4326);
    small(dir.path(), &root, "mercator", -10.0, 60.0, 0.5, 3857);
    small(dir.path(), &root, "moved", -5.0, 50.0, 0.5, 4326);
    let out = root.join("m");
    let err = fails(&["merge", "--from", s(&root), "--datasets", "plants,shifted", "--out", s(&out)]);
    one_error_line(&err, &["shifted is shifted by (0.24, 0.5) cells from plants", "--resolution 0.5", "--bounds"]);
    let err = fails(&["merge", "--from", s(&root), "--datasets", "plants,finer", "--out", s(&out)]);
    one_error_line(&err, &["finer has 0.25 x 0.25 cells, plants has 0.5 x 0.5", "--resolution"]);
    let err = fails(&["merge", "--from", s(&root), "--datasets", "plants,mercator", "--out", s(&out)]);
    one_error_line(&err, &["mercator is in another CRS (EPSG:3857) than plants (EPSG:4326)", "--target-crs"]);
    assert!(!out.join("dataset.json").exists(), "nothing is written for a refused merge");
    // Whole-cell offsets are fine.
    ok(&["merge", "--from", s(&root), "--datasets", "plants,moved", "--out", s(&out), "-q"]);
    // Other refusals: one dataset, unknown dataset, output = input, nested merge.
    let err = fails(&["merge", "--from", s(&root), "--datasets", "plants", "--out", s(&out)]);
    one_error_line(&err, &["at least two datasets"]);
    let err = fails(&["merge", "--from", s(&root), "--datasets", "plants,nothere", "--out", s(&out)]);
    one_error_line(&err, &["nothere", "no dataset.json"]);
    let err = fails(&["merge", "--from", s(&root), "--datasets", "plants,moved", "--out", s(&root.join("plants"))]);
    one_error_line(&err, &["would replace its input"]);
    let err = fails(&["merge", "--from", s(&root), "--datasets", "plants,m", "--out", s(&root.join("m2"))]);
    one_error_line(&err, &["m at", "is itself a merge"]);
    // Other inputs into an existing merged dataset: refused unless --overwrite.
    let err = fails(&["merge", "--from", s(&root), "--datasets", "moved,plants", "--out", s(&out)]);
    one_error_line(&err, &["from other inputs", "--overwrite"]);
    ok(&["merge", "--from", s(&root), "--datasets", "moved,plants", "--out", s(&out), "--overwrite", "-q"]);
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

/// The merge tests' query on their schema.
trait MergeSchema {
    fn rows(&self, rel: &str) -> Vec<Row>;
}

impl MergeSchema for Schema {
    fn rows(&self, rel: &str) -> Vec<Row> {
        client()
            .query(
                &format!(
                    "SELECT row_idx::int8, col_idx::int8, x, y, a::float8, b::float8, c::float8 FROM \"{}\".\"{rel}\" ORDER BY 1, 2",
                    self.name
                ),
                &[],
            )
            .unwrap()
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), vec![r.get(4), r.get(5), r.get(6)]))
            .collect()
    }
}

fn with_db(args: &[&str]) -> String {
    succeeded(args, bin().env("DATABASE_URL", db_url()).args(args).output().unwrap())
}

/// `merge --from <from> --datasets a,b,c --name <name> --to-postgres --schema <schema>` plus
/// `extra`, which must succeed; returns stdout.
fn merge_to_pg(from: &str, name: &str, schema: &str, extra: &[&str]) -> String {
    let mut args =
        vec!["merge", "--from", from, "--datasets", "a,b,c", "--name", name, "--to-postgres", "--schema", schema];
    args.extend_from_slice(extra);
    with_db(&args)
}

#[test]
fn merge_to_postgres_table_load_and_view_agree() {
    if !require(&[Pg, Python]) {
        return;
    }
    let dir = tmp();
    let root = dir.path().join("staging");
    let ins = inputs(dir.path(), &root);
    let want = expected(&ins, false);
    let sc = Schema::new("pg");

    // --to-postgres: staged as <from>/<name>, then loaded exactly once per tile.
    let out = merge_to_pg(s(&root), "abc", &sc.name, &["-q"]);
    assert!(out.contains("abc: 3 datasets merged"), "{out}");
    let parquet = merged_rows(&root.join("abc"), &["a", "b", "c"]);
    assert_eq!(parquet, want);
    assert_eq!(sc.rows("abc"), parquet, "PostgreSQL holds the Parquet merge's rows");
    let types: Vec<(String, String, bool)> = client()
        .query(
            "SELECT column_name::text, data_type::text, is_nullable = 'YES' FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = 'abc' ORDER BY ordinal_position",
            &[&sc.name],
        )
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        types.iter().skip(4).cloned().collect::<Vec<_>>(),
        vec![
            ("a".into(), "real".into(), true),
            ("b".into(), "smallint".into(), true),
            ("c".into(), "smallint".into(), true)
        ]
    );
    // A rerun loads nothing twice.
    let again = merge_to_pg(s(&root), "abc", &sc.name, &["-q"]);
    assert!(again.contains("(0 loaded now"), "{again}");
    assert_eq!(sc.rows("abc").len(), want.len());
    // verify compares the merged value sums tile by tile.
    let v = with_db(&["verify", "--from", s(&root), "--dataset", "abc", "--schema", &sc.name]);
    assert!(v.contains("tiles match"), "{v}");

    // `load` of a merged staged dataset (here into another table name via a prefix).
    let out =
        with_db(&["load", "--from", s(&root), "--dataset", "abc", "--schema", &sc.name, "--table-prefix", "l_", "-q"]);
    assert!(out.contains("rows copied"), "{out}");
    assert_eq!(sc.rows("l_abc"), parquet);

    // --view over the loaded input tables gives the same rows.
    with_db(&["load", "--from", s(&root), "--dataset", "a,b,c", "--schema", &sc.name, "-q"]);
    let out = merge_to_pg(s(&root), "abc_view", &sc.name, &["--view"]);
    assert!(out.contains("view"), "{out}");
    assert_eq!(sc.rows("abc_view"), parquet, "the view's rows equal the merged table's");
}

#[test]
fn merge_zarr_loads_the_same_rows_as_parquet() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let root = dir.path().join("staging");
    let ins = inputs(dir.path(), &root);
    let want = expected(&ins, false);
    let sc = Schema::new("zarr");
    let merge_load = |name: &str, format: &str| merge_to_pg(s(&root), name, &sc.name, &["--format", format, "-q"]);
    merge_load("abc", "parquet");
    let out = merge_load("abcz", "zarr");
    assert!(out.contains("abcz: 3 datasets merged"), "{out}");
    assert_eq!(sc.rows("abc"), want);
    assert_eq!(sc.rows("abcz"), sc.rows("abc"), "the Zarr merge loads the Parquet merge's rows");
    let cols = |t: &str| -> Vec<(String, String, bool)> {
        client()
            .query(
                "SELECT column_name::text, data_type::text, is_nullable = 'YES' FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                &[&sc.name, &t],
            )
            .unwrap()
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    };
    assert_eq!(cols("abcz"), cols("abc"));
    let v = with_db(&["verify", "--from", s(&root), "--dataset", "abcz", "--schema", &sc.name]);
    assert!(v.contains("tiles match"), "{v}");
    let again = merge_load("abcz", "zarr");
    assert!(again.contains("(0 loaded now"), "{again}");
    let shown = with_db(&["inspect", s(&root), "--database-url", &db_url(), "--schema", &sc.name]);
    assert!(shown.lines().any(|l| l.starts_with("abcz") && l.contains("loaded 20/20")), "{shown}");

    // A rewritten chunk fails its tile alone, named, with what to run; the others load.
    let chunk = root.join("abcz/abcz.zarr/b/c/1/1");
    let good = std::fs::read(&chunk).unwrap();
    std::fs::write(&chunk, &good[..good.len() / 2]).unwrap();
    let out = bin()
        .env("DATABASE_URL", db_url())
        .args(["load", "--from", s(&root), "--dataset", "abcz", "--schema", &sc.name, "--table-prefix", "l_", "-q"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("r16_c16") && err.contains("is corrupt or was rewritten") && err.contains("run merge again"),
        "{err}"
    );
    assert!(err.contains("1 of 20 tiles failed"), "{err}");
    std::fs::write(&chunk, &good).unwrap();
    with_db(&["load", "--from", s(&root), "--dataset", "abcz", "--schema", &sc.name, "--table-prefix", "l_", "-q"]);
    assert_eq!(sc.rows("l_abcz"), want);
}

#[test]
fn merge_from_s3_to_postgres_and_to_s3_equals_local() {
    if !require(&[Pg, S3, Python]) {
        return;
    }
    let dir = tmp();
    let bucket = Bucket::new("merge");
    let local = dir.path().join("staging");
    let remote = bucket.url("staging");
    let ins = inputs_to(dir.path(), &[s(&local), &remote]);
    let want = expected(&ins, false);
    let sc = Schema::new("s3");
    let url = db_url();

    // The inputs on S3, the merged Parquet dataset staged next to them, then loaded.
    let out = merge_to_pg(&remote, "abc", &sc.name, &["--database-url", &url, "-q"]);
    assert!(out.contains(&format!("-> {remote}/abc")), "{out}");
    assert_eq!(sc.rows("abc"), want, "PostgreSQL holds the local inputs' merge");
    with_db(&[
        "merge",
        "--from",
        s(&local),
        "--datasets",
        "a,b,c",
        "--name",
        "abc",
        "--to-postgres",
        "--schema",
        &sc.name,
        "--table-prefix",
        "l_",
        "-q",
    ]);
    assert_eq!(sc.rows("abc"), sc.rows("l_abc"), "merged from S3 = merged locally");
    let v = with_db(&["verify", "--from", &remote, "--dataset", "abc", "--schema", &sc.name]);
    assert!(v.contains("tiles match"), "{v}");

    // --out on S3 (another prefix), as Zarr, loaded too: same rows, and the same chunks as a
    // local Zarr merge of the local inputs.
    let zout = bucket.url("merged/abcz");
    let out = with_db(&[
        "merge",
        "--from",
        &remote,
        "--datasets",
        "a,b,c",
        "--out",
        &zout,
        "--format",
        "zarr",
        "--to-postgres",
        "--database-url",
        &url,
        "--schema",
        &sc.name,
        "-q",
    ]);
    assert!(out.contains(&format!("-> {zout}")), "{out}");
    assert_eq!(sc.rows("abcz"), want);
    ok(&[
        "merge",
        "--from",
        s(&local),
        "--datasets",
        "a,b,c",
        "--out",
        s(&local.join("abcz")),
        "--format",
        "zarr",
        "-q",
    ]);
    let mirror = bucket.download("merged");
    assert_eq!(tile_checksums(mirror.path(), "abcz"), tile_checksums(&local, "abcz"));
    assert!(
        files_under(&mirror.path().join("abcz/abcz.zarr")) == files_under(&local.join("abcz/abcz.zarr")),
        "the Zarr objects on S3 differ from the local ones"
    );
    assert_eq!(zarr_rows(&mirror.path().join("abcz/abcz.zarr"), &["a", "b", "c"]), want);
}

// ---------------------------------------------------------------------------
// Crash and resume
// ---------------------------------------------------------------------------

fn count_records(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "json")).count())
        .unwrap_or(0)
}

/// Starts `merge` of the three inputs (window 16: 20 tiles, one thread, `extra` flags) into
/// `<dir>/crashed/m` with slowed commits, kills it with SIGKILL after 3 commits, reruns it to
/// completion, and merges the same into `<dir>/clean/m` without interruption. Checks what any
/// format must give (a converting manifest at the kill, a rerun that resumes and writes only
/// the rest, identical records) and returns the inputs and the two staging roots.
fn kill_9_and_rerun(dir: &Path, extra: &[&str]) -> (Vec<Input>, PathBuf, PathBuf) {
    let root = dir.join("staging");
    let ins = inputs(dir, &root);
    // Same name under two roots: the name is in every tile's metadata.
    let (rc, ru) = (dir.join("crashed"), dir.join("clean"));
    let (crashed, clean) = (rc.join("m"), ru.join("m"));
    let args = |out: &Path| -> Vec<String> {
        let mut a = merge_args(&root, out, &["--window", "16", "--threads", "1"]);
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect()
    };
    let mut child = bin()
        .args(args(&crashed))
        .env("RASTERSTAGE_TEST_TILE_DELAY_MS", "150")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let records = crashed.join("_tiles");
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_records(&records) < 3 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("merge ended ({status}) before it could be killed");
        }
        assert!(Instant::now() < deadline, "no tile committed after 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let m = manifest(&rc, "m");
    assert_eq!(m["status"], "converting", "a killed merge must not look complete");
    let committed = count_records(&records);
    assert!(committed < 20, "{committed} tiles committed at the kill");

    let a = args(&crashed);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = run_env(&a, &[("RUST_LOG", "info")]);
    assert!(out.status.success(), "resume failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("({} written now)", 20 - committed)), "{stdout}");

    let b = args(&clean);
    ok(&b.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(manifest(&rc, "m")["status"], "complete");
    validate_dataset_json(&rc, "m");
    assert_eq!(tile_checksums(&rc, "m"), tile_checksums(&ru, "m"), "per-tile checksums");
    let (mc, mu) = (manifest(&rc, "m"), manifest(&ru, "m"));
    for k in ["row_count", "value_sum", "tile_count", "settings_hash", "grid", "tiles", "columns"] {
        assert_eq!(mc[k], mu[k], "{k}");
    }
    (ins, rc, ru)
}

#[test]
fn kill_9_mid_merge_then_rerun_is_identical() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let (_, rc, ru) = kill_9_and_rerun(dir.path(), &[]);
    assert_eq!(merged_rows(&rc.join("m"), &["a", "b", "c"]), merged_rows(&ru.join("m"), &["a", "b", "c"]));
}

#[test]
fn kill_9_mid_zarr_merge_then_rerun_is_identical() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let (ins, rc, ru) = kill_9_and_rerun(dir.path(), &["--format", "zarr"]);
    // Every object of the group, metadata and chunks, byte for byte.
    assert!(files_under(&rc.join("m/m.zarr")) == files_under(&ru.join("m/m.zarr")), "Zarr objects differ");
    assert_eq!(zarr_rows(&rc.join("m/m.zarr"), &["a", "b", "c"]), expected(&ins, false));
}

#[test]
fn merge_from_config_section() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let root = dir.path().join("staging");
    let ins = inputs(dir.path(), &root);
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "datasets: []\noutput:\n  uri: {}\nmerge:\n  name: ab\n  datasets: [a, b]\n  how: outer\n  format: parquet\n",
            root.display()
        ),
    )
    .unwrap();
    validate_with_schema(&repo_file("schemas/config.schema.json"), &cfg);
    let out = ok(&["merge", "--config", s(&cfg), "-q"]);
    assert!(out.contains("ab: 2 datasets merged (outer)"), "{out}");
    assert_eq!(merged_rows(&root.join("ab"), &["a", "b"]), expected(&ins[..2], false));
    // An unknown key in merge: is an error naming it.
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "datasets: []\nmerge:\n  datasets: [a, b]\n  colour: red\n").unwrap();
    one_error_line(&fails(&["merge", "--config", s(&bad)]), &["colour"]);
}

#[test]
fn gdal_reads_every_array_of_a_merged_zarr_v2() {
    // An independent Zarr reader besides zarr-python: Debian's GDAL 3.6 (through the gdal
    // crate) opens each array of the merged v2 group and reads every cell the inputs hold.
    let dir = tmp();
    let root = dir.path().join("staging");
    let ins = inputs(dir.path(), &root);
    let want = expected(&ins, false);
    ok(&merge_args(&root, &root.join("z2"), &["--window", "24", "--format", "zarr", "--zarr-version", "2"]));
    let group = root.join("z2").join("z2.zarr");
    for (k, col) in ["a", "b", "c"].iter().enumerate() {
        let path = format!("ZARR:\"{}\":/{col}", s(&group));
        let ds = gdal::Dataset::open(&path).unwrap_or_else(|e| panic!("GDAL cannot open {path}: {e}"));
        assert_eq!(ds.raster_size(), (80, 60), "{col}");
        let gt = ds.geo_transform().unwrap();
        let exp = [-10.0, RES, 0.0, 60.0, 0.0, -RES];
        assert!(gt.iter().zip(exp).all(|(a, b)| (a - b).abs() < 1e-9), "{col}: {gt:?}");
        let band = ds.rasterband(1).unwrap();
        let fill = band.no_data_value();
        let buf = band.read_as::<f64>((0, 0), (80, 60), (80, 60), None).unwrap();
        let got: Vec<(i64, i64, f64)> = buf
            .data()
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_nan() && Some(**v) != fill)
            .map(|(i, v)| ((i / 80) as i64, (i % 80) as i64, *v))
            .collect();
        let cells: Vec<(i64, i64, f64)> = want.iter().filter_map(|r| r.4[k].map(|v| (r.0, r.1, v))).collect();
        assert!(!cells.is_empty());
        assert_eq!(got, cells, "GDAL's {col} differs from the input's cells");
    }
}
