//! Limits and reserved names: an absurd flag, config value or environment variable is refused
//! (worker counts: capped) with one line naming the setting and the limit, before anything
//! is written; a dataset can never be named like a catalogue table.

use crate::common::*;
use std::path::{Path, PathBuf};

/// A small Int16 raster, 120 x 80 cells of 0.05 degree from (-180, 90), nodata -1.
fn small_tif(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    let spec = RasterSpec { nodata: Some(-1.0), ..RasterSpec::geographic(120, 80, 0.05) };
    let mut next = lcg(11);
    write_tif(&p, &spec, (0..120 * 80).map(|_| (next() % 9) as i16).collect::<Vec<_>>());
    p
}

/// Runs a command that must be refused: one `error:` line mentioning `needles`, and `out`
/// (the folder it would write to) never created.
fn refused(args: &[&str], out: &Path, needles: &[&str]) -> String {
    let line = one_error_line(&fails(args), needles);
    assert!(!out.exists(), "{} was created by a refused run: {args:?}", out.display());
    line
}

/// `convert <src> --name a --out <out>` plus `extra`.
fn convert_args<'a>(src: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["convert", s(src), "--name", "a", "--out", s(out)];
    v.extend_from_slice(extra);
    v
}

#[test]
fn absurd_bounds_are_refused() {
    let dir = tmp();
    let src = small_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    // Was a `capacity overflow` panic.
    for flag in ["--bounds", "-te"] {
        let line = refused(
            &convert_args(&src, &out, &[flag, "-1e300", "-1e300", "1e300", "1e300"]),
            &out,
            &["target grid", "--bounds", "2147483647", "4398046511104"],
        );
        assert!(!line.contains("panic"), "{line}");
    }
    for b in [["NaN", "0", "1", "1"], ["0", "0", "inf", "1"], ["1", "0", "0", "1"], ["0", "1", "1", "1"]] {
        let mut args = convert_args(&src, &out, &["--bounds"]);
        args.extend_from_slice(&b);
        refused(&args, &out, &["--bounds", "finite", "MINX < MAXX"]);
    }
}

#[test]
fn absurd_resolutions_are_refused() {
    let dir = tmp();
    let src = small_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    // 6 x 4 degrees at 1e-7: 6e7 x 4e7 cells (was a 4 GB allocation).
    refused(
        &convert_args(&src, &out, &["--resolution", "1e-7", "--method", "sum"]),
        &out,
        &["target grid", "--resolution", "4398046511104"],
    );
    refused(&convert_args(&src, &out, &["-tr", "1e-7", "1e-7", "--method", "sum"]), &out, &["target grid"]);
    // The extent of a reprojection is checked the same way. (A source reaching the pole, as
    // `a.tif` does, has no finite Web Mercator extent: refused for its bounds, as gdalwarp does.)
    let mid = dir.path().join("mid.tif");
    let spec = RasterSpec { nodata: Some(-1.0), y0: 60.0, ..RasterSpec::geographic(120, 80, 0.05) };
    write_tif(&mid, &spec, vec![1i16; 120 * 80]);
    refused(
        &convert_args(&mid, &out, &["--target-crs", "EPSG:3857", "--resolution", "0.001", "--method", "average"]),
        &out,
        &["target grid", "--resolution", "2147483647"],
    );
    for r in ["0", "-0.1", "NaN", "inf"] {
        refused(
            &convert_args(&src, &out, &["--resolution", r, "--method", "sum"]),
            &out,
            &["--resolution", "positive"],
        );
    }
}

#[test]
fn absurd_windows_are_refused() {
    let dir = tmp();
    let src = small_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    for w in ["0", "15", "8193", "16384", "2147483648"] {
        refused(&convert_args(&src, &out, &["--window", w]), &out, &["--window", "between 16 and 8192", w]);
    }
    let cfg = dir.path().join("c.yml");
    std::fs::write(
        &cfg,
        format!(
            "datasets:\n  - name: a\n    path: {}\noutput:\n  uri: {}\nresampling:\n  window_size: 100000\n",
            s(&src),
            s(&out)
        ),
    )
    .unwrap();
    refused(&["convert", "--config", s(&cfg)], &out, &[s(&cfg), "resampling.window_size", "8192"]);
}

#[test]
fn too_many_tiles_suggests_a_larger_window() {
    let dir = tmp();
    let src = small_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    // 60000 x 40000 cells: within the grid limits, but 9,375,000 windows of 16.
    refused(
        &convert_args(&src, &out, &["--resolution", "0.0001", "--method", "average", "--window", "16"]),
        &out,
        &["9375000 tiles", "2097152", "larger --window"],
    );
}

#[test]
fn nodata_the_cell_type_cannot_hold_is_refused() {
    let dir = tmp();
    let src = small_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    for v in ["NaN", "1.5", "1e10", "-40000", "inf"] {
        refused(&convert_args(&src, &out, &["--nodata", v]), &out, &["--nodata", "Int16", "-32768", "32767"]);
    }
    // A value the type holds is fine.
    ok(&convert_args(&src, &out, &["--nodata", "-32768", "-q"]));
}

#[test]
fn band_and_zarr_version_out_of_range_are_refused() {
    let dir = tmp();
    let src = small_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    refused(&convert_args(&src, &out, &["--band", "0"]), &out, &["band", "from 1"]);
    // 2^32 + 1 would be band 1 if it were cast to a C int.
    refused(&convert_args(&src, &out, &["--band", "4294967297"]), &out, &["band 4294967297", "1 band"]);
    refused(
        &convert_args(&src, &out, &["--zarr-version", "7", "--format", "zarr"]),
        &out,
        &["--zarr-version", "2 or 3"],
    );
    refused(&convert_args(&src, &out, &["--resolution-tolerance", "0.5"]), &out, &["--resolution-tolerance", "0.001"]);
}

#[test]
fn threads_are_capped_with_a_warning() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let src = small_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    refused(&convert_args(&src, &out, &["-j", "0"]), &out, &["--threads", "at least 1"]);
    let args = convert_args(&src, &out, &["-j", "20000", "--resolution", "0.1", "--method", "sum", "--window", "16"]);
    let run_out = run(&args);
    succeeded(&args, run_out.clone());
    let stderr = String::from_utf8_lossy(&run_out.stderr);
    assert!(stderr.contains("--threads 20000 is more than the limit of 256: using 256"), "{stderr}");
    // The same cells as a one-thread run.
    let one = dir.path().join("one");
    ok(&[
        "convert",
        s(&src),
        "--name",
        "a",
        "--out",
        s(&one),
        "--resolution",
        "0.1",
        "--method",
        "sum",
        "--window",
        "16",
        "-j",
        "1",
    ]);
    assert_eq!(parquet_cells(&out, "a"), parquet_cells(&one, "a"));
    assert_eq!(manifest(&out, "a")["status"], "complete");
}

#[test]
fn storage_settings_are_validated_when_read() {
    let dir = tmp();
    let src = small_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    // Was a panic: "cannot convert float seconds to Duration".
    for (key, v) in [
        ("request_timeout_secs", "1e300"),
        ("retry_timeout_secs", "1e300"),
        ("request_timeout_secs", ".nan"),
        ("retry_timeout_secs", "-1"),
        ("request_timeout_secs", ".inf"),
    ] {
        let cfg = dir.path().join("c.yml");
        std::fs::write(
            &cfg,
            format!(
                "datasets:\n  - name: a\n    path: {}\noutput:\n  uri: {}\nstorage:\n  {key}: {v}\n",
                s(&src),
                s(&out)
            ),
        )
        .unwrap();
        refused(&["convert", "--config", s(&cfg)], &out, &[s(&cfg), &format!("storage.{key}"), "86400"]);
    }
    // The environment is read before anything else, for a local or an S3 output, and for load.
    let cases = [
        ("RASTERSTAGE_S3_RETRY_TIMEOUT_SECS", "1e300", "86400"),
        ("RASTERSTAGE_S3_RETRY_TIMEOUT_SECS", "NaN", "86400"),
        ("RASTERSTAGE_S3_REQUEST_TIMEOUT_SECS", "inf", "86400"),
        ("RASTERSTAGE_S3_REQUEST_TIMEOUT_SECS", "-1", "86400"),
        ("RASTERSTAGE_S3_MAX_CONCURRENT_REQUESTS", "1e300", "1024"),
        ("RASTERSTAGE_S3_MAX_RETRIES", "2.5", "100"),
    ];
    for (var, v, limit) in cases {
        for args in [
            convert_args(&src, &out, &[]),
            vec!["convert", s(&src), "--name", "a", "--out", "s3://rasterstage-never-reached/staging"],
            vec!["load", "--from", s(&out), "--database-url", "postgres://nobody@127.0.0.1:1/none"],
        ] {
            let o = run_env(&args, &[(var, v)]);
            assert!(!o.status.success(), "{args:?} with {var}={v} should have failed");
            one_error_line(&String::from_utf8_lossy(&o.stderr), &[var, limit]);
            assert!(!out.exists(), "{args:?} with {var}={v} wrote {}", out.display());
        }
    }
}

#[test]
fn one_target_cell_of_too_many_source_cells_is_refused() {
    let dir = tmp();
    // 100000 x 100000 cells declared by a VRT (nothing is read before the refusal).
    let vrt = dir.path().join("big.vrt");
    std::fs::write(
        &vrt,
        "<VRTDataset rasterXSize=\"100000\" rasterYSize=\"100000\"><SRS>EPSG:4326</SRS>\
         <GeoTransform>-180, 0.001, 0, 90, 0, -0.001</GeoTransform>\
         <VRTRasterBand dataType=\"Byte\" band=\"1\"/></VRTDataset>",
    )
    .unwrap();
    let out = dir.path().join("st");
    // 10 degrees: 10000 x 10000 source cells in each target cell.
    refused(
        &convert_args(&vrt, &out, &["--resolution", "10", "--method", "sum"]),
        &out,
        &["one target cell", "67108864", "finer --resolution"],
    );
}

#[test]
fn a_large_downsampling_factor_reads_rows_in_pieces() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    // 4096 x 2048 Int32 cells of 1/64 degree from (0, 32): one row of 32-degree target cells
    // needs 32 MB of source, twice the read budget, so the row is computed cell by cell.
    let src = dir.path().join("fine.tif");
    let spec = RasterSpec { x0: 0.0, y0: 32.0, ..RasterSpec::geographic(4096, 2048, 1.0 / 64.0) };
    let mut next = lcg(3);
    let values: Vec<i32> = (0..4096 * 2048).map(|_| (next() % 10) as i32).collect();
    let half = |c0: usize| -> f64 {
        (0..2048)
            .map(|r| values[r * 4096 + c0..r * 4096 + c0 + 2048].iter().map(|&v| v as i64).sum::<i64>())
            .sum::<i64>() as f64
    };
    let (left, right) = (half(0), half(2048));
    write_tif(&src, &spec, values);
    let out = dir.path().join("st");
    ok(&["convert", s(&src), "--name", "coarse", "--out", s(&out), "--resolution", "32", "--method", "sum", "-q"]);
    assert_eq!(parquet_cells(&out, "coarse"), vec![(0, 0, left), (0, 1, right)]);
}

#[test]
fn catalogue_names_are_refused_at_convert_and_merge() {
    let dir = tmp();
    let src = small_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    for name in ["raster_datasets", "raster_tile_loads", "raster-datasets"] {
        refused(
            &["convert", s(&src), "--name", name, "--out", s(&out)],
            &out,
            &["dataset name", &name.replace('-', "_"), "catalogue", "--name"],
        );
    }
    let cfg = dir.path().join("c.yml");
    std::fs::write(
        &cfg,
        format!("datasets:\n  - name: raster_tile_loads\n    path: {}\noutput:\n  uri: {}\n", s(&src), s(&out)),
    )
    .unwrap();
    refused(&["convert", "--config", s(&cfg)], &out, &[s(&cfg), "raster_tile_loads", "--name"]);
    refused(
        &["merge", "--from", s(&out), "--datasets", "a,b", "--name", "raster_datasets"],
        &out,
        &["raster_datasets", "--name"],
    );
}

/// The limits tests' query on their schema.
trait LimitsSchema {
    /// Rows of `table`, and whether it exists.
    fn count(&self, table: &str) -> Option<i64>;
}

impl LimitsSchema for Schema {
    fn count(&self, table: &str) -> Option<i64> {
        let t = format!("\"{}\".\"{table}\"", self.name);
        let exists: bool = client().query_one("SELECT to_regclass($1) IS NOT NULL", &[&t]).unwrap().get(0);
        exists.then(|| client().query_one(&format!("SELECT count(*) FROM {t}"), &[]).unwrap().get(0))
    }
}

#[test]
fn catalogue_tables_are_never_a_dataset_table_at_load() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let src = small_tif(dir.path(), "a.tif");
    let root = dir.path().join("st");
    let sc = Schema::new("reserved");
    let db = db_url();
    // One dataset loaded normally, so that the catalogue has rows to lose.
    ok(&["convert", s(&src), "--name", "other", "--out", s(&root), "-q"]);
    ok(&["load", "--from", s(&root), "--schema", &sc.name, "--database-url", &db, "-q"]);
    let catalogue = || (sc.count("raster_datasets"), sc.count("raster_tile_loads"));
    let before = catalogue();
    assert_eq!(before, (Some(1), Some(1)));
    // prefix + name = raster_datasets.
    ok(&["convert", s(&src), "--name", "datasets", "--out", s(&root), "-q"]);
    let args = [
        "load",
        "--from",
        s(&root),
        "--dataset",
        "datasets",
        "--schema",
        &sc.name,
        "--database-url",
        &db,
        "--table-prefix",
        "raster_",
    ];
    for replace in [false, true] {
        let mut a = args.to_vec();
        if replace {
            a.push("--replace");
        }
        one_error_line(&fails(&a), &["raster_datasets", "prefix", "catalogue", "--name"]);
        assert_eq!(catalogue(), before, "{a:?}");
    }
    // A staging folder already named like a catalogue table (staged before names were checked).
    std::fs::rename(root.join("datasets"), root.join("raster_datasets")).unwrap();
    let path = root.join("raster_datasets").join("dataset.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m["name"] = "raster_datasets".into();
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let a = [
        "load",
        "--from",
        s(&root),
        "--dataset",
        "raster_datasets",
        "--schema",
        &sc.name,
        "--database-url",
        &db,
        "--replace",
    ];
    one_error_line(&fails(&a), &["dataset name raster_datasets", "catalogue", "--name"]);
    assert_eq!(catalogue(), before);
}

#[test]
fn load_jobs_are_capped_with_a_warning() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let src = small_tif(dir.path(), "a.tif");
    let root = dir.path().join("st");
    let sc = Schema::new("jobs");
    let db = db_url();
    ok(&["convert", s(&src), "--name", "a", "--out", s(&root), "--window", "32", "-q"]);
    let base = ["load", "--from", s(&root), "--schema", &sc.name, "--database-url", &db];
    let mut zero = base.to_vec();
    zero.extend(["--jobs", "0"]);
    one_error_line(&fails(&zero), &["--jobs", "at least 1"]);
    assert_eq!(sc.count("raster_datasets"), None, "a refused load touched the database");
    let mut many = base.to_vec();
    many.extend(["--jobs", "20000", "-q"]);
    let o = run(&many);
    succeeded(&many, o.clone());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("--jobs 20000 is more than the limit of 256: using 256"), "{stderr}");
    let staged: u64 = manifest(&root, "a")["row_count"].as_u64().unwrap();
    assert_eq!(sc.count("a"), Some(staged as i64));
}

#[test]
fn merge_windows_and_unions_are_bounded() {
    let dir = tmp();
    let src = small_tif(dir.path(), "a.tif");
    let root = dir.path().join("st");
    ok(&["convert", s(&src), "--name", "a", "--out", s(&root), "-q"]);
    // On the same lattice, 2e10 cells east of `a`: the union would be wider than any grid.
    ok(&["convert", s(&src), "--name", "far", "--out", s(&root), "--bounds", "1e9", "0", "1000000001", "1", "-q"]);
    let merged = root.join("merged");
    refused(
        &["merge", "--from", s(&root), "--datasets", "a,far"],
        &merged,
        &["merged grid of a and far", "2147483647"],
    );
    for w in ["0", "100000"] {
        refused(&["merge", "--from", s(&root), "--datasets", "a,far", "--window", w], &merged, &["--window", "8192"]);
    }
    refused(&["merge", "--from", s(&root), "--datasets", "a,far", "-j", "0"], &merged, &["--threads", "at least 1"]);
}

#[test]
fn shard_counts_are_bounded() {
    let dir = tmp();
    let src = small_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    // A counter per shard: 10^12 of them would exhaust memory.
    refused(
        &["plan", s(&src), "--name", "a", "--out", s(&out), "--shards", "1000000000000"],
        &out,
        &["--shards", "65536"],
    );
    refused(&convert_args(&src, &out, &["--shard", "0/1000000000000"]), &out, &["--shard", "65536"]);
    let o = run_env(&convert_args(&src, &out, &["--shards", "70000"]), &[("JOB_COMPLETION_INDEX", "1")]);
    assert!(!o.status.success());
    one_error_line(&String::from_utf8_lossy(&o.stderr), &["--shards", "65536"]);
    assert!(!out.exists());
}
