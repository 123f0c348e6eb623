//! Resume and refusal: `kill -9` in the middle of a conversion, rerun, and the output is
//! exactly that of an uninterrupted run; a finished conversion is not redone; a changed source
//! or changed settings are refused unless `--overwrite`.

use crate::common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// A Byte raster with nodata, 1000 x 1000 cells: with `--window 32` it has 1024 tiles.
fn many_tiles_source(path: &Path) {
    let n = 1000;
    let spec = RasterSpec { nodata: Some(255.0), ..RasterSpec::geographic(n, n, 0.01) };
    let mut next = lcg(3);
    let values: Vec<u8> = (0..n * n).map(|_| (next() % 256) as u8).collect();
    write_tif(path, &spec, values);
}

fn count_records(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|it| it.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().ends_with(".json")).count())
        .unwrap_or(0)
}

/// Every cell of one Parquet dataset is in the other and the other way round (multisets).
fn same_parquet_cells(a: &Path, b: &Path, name: &str) {
    let ga = a.join(name).join("tiles/*.parquet");
    let gb = b.join(name).join("tiles/*.parquet");
    let (ga, gb) = (s(&ga), s(&gb));
    let row = duckdb_row(&format!(
        "SELECT (SELECT count(*) FROM read_parquet('{ga}')), (SELECT count(*) FROM read_parquet('{gb}')), \
         (SELECT count(*) FROM (SELECT * FROM read_parquet('{ga}') EXCEPT ALL SELECT * FROM read_parquet('{gb}'))), \
         (SELECT count(*) FROM (SELECT * FROM read_parquet('{gb}') EXCEPT ALL SELECT * FROM read_parquet('{ga}')))"
    ));
    let v: Vec<u64> = row.split('|').map(|x| x.parse().unwrap()).collect();
    assert_eq!(v[0], v[1], "row counts differ: {row}");
    assert!(v[0] > 0);
    assert_eq!((v[2], v[3]), (0, 0), "cells differ between the resumed and the uninterrupted run: {row}");
}

/// The Zarr arrays of two runs hold the same values (zarr-python).
fn same_zarr_values(a: &Path, b: &Path, name: &str) {
    let za = a.join(name).join(format!("{name}.zarr"));
    let zb = b.join(name).join(format!("{name}.zarr"));
    let code = format!(
        "import numpy as np, zarr\n\
         x = zarr.open_group({za:?}, mode='r')[{name:?}][:]\n\
         y = zarr.open_group({zb:?}, mode='r')[{name:?}][:]\n\
         print(x.shape == y.shape and np.array_equal(x, y))",
        za = s(&za),
        zb = s(&zb),
    );
    assert_eq!(py(&code), "True", "Zarr values differ between the resumed and the uninterrupted run");
}

fn crash_and_resume(format: &str, extra: &[&str]) {
    let dir = tmp();
    let src = dir.path().join("cells.tif");
    many_tiles_source(&src);
    let (crashed, clean) = (dir.path().join("crashed"), dir.path().join("clean"));
    let name = "cells";
    let args = |out: &Path| -> Vec<String> {
        ["convert", s(&src), "--name", name, "--out", s(out), "--format", format, "--resolution", "0.02"]
            .iter()
            .map(|a| a.to_string())
            .chain(["--method", "average", "--window", "32", "--threads", "2"].iter().map(|a| a.to_string()))
            .chain(extra.iter().map(|a| a.to_string()))
            .collect()
    };
    // 1000 x 1000 at 0.01 -> 500 x 500 at 0.02, 32-cell windows: 256 tiles.
    let mut child = bin()
        .args(args(&crashed))
        .env("RASTERSTAGE_TEST_TILE_DELAY_MS", "20")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let records = crashed.join(name).join("_tiles");
    let deadline = Instant::now() + Duration::from_secs(120);
    while count_records(&records) < 5 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("convert ended ({status}) before it could be killed");
        }
        assert!(Instant::now() < deadline, "no tile committed after 120 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL: no cleanup, no flush
    child.wait().unwrap();
    let m = manifest(&crashed, name);
    assert_eq!(m["status"], "converting", "a killed conversion must not look complete");
    let total = m["tile_count"].as_u64().unwrap();
    let committed = count_records(&records) as u64;
    assert!(committed >= 5 && committed < total, "{committed} of {total} tiles committed at the kill");

    // `inspect` shows the partial dataset.
    let shown = ok(&["inspect", s(&crashed)]);
    assert!(shown.contains("converting") && shown.contains(&format!("/{total}")), "{shown}");

    // Rerun the same command (no delay): only the missing tiles are done.
    let a = args(&crashed);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = run_env(&a, &[("RUST_LOG", "info")]);
    assert!(out.status.success(), "resume failed: {}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("resuming"), "rerun should say it resumes: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let redone = total - committed;
    assert!(
        stdout.contains(&format!("({redone} written now)")),
        "resume should redo exactly the {redone} missing tiles: {stdout}"
    );

    let b = args(&clean);
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    ok(&b);

    let (mc, mu) = (manifest(&crashed, name), manifest(&clean, name));
    assert_eq!(mc["status"], "complete");
    validate_dataset_json(&crashed, name);
    assert_eq!(tile_checksums(&crashed, name), tile_checksums(&clean, name), "per-tile checksums");
    for k in ["row_count", "value_sum", "tile_count", "settings_hash", "grid"] {
        assert_eq!(mc[k], mu[k], "{k}");
    }
    assert_eq!(mc["tiles"], mu["tiles"]);
    match format {
        "parquet" => same_parquet_cells(&crashed, &clean, name),
        _ => same_zarr_values(&crashed, &clean, name),
    }
    // Byte-identical staged objects (the commit records included).
    let data = |root: &Path| -> Vec<(String, Vec<u8>)> {
        files_under(&root.join(name)).into_iter().filter(|(p, _)| p != "dataset.json" && !p.contains('#')).collect()
    };
    let (fc, fu) = (data(&crashed), data(&clean));
    assert_eq!(fc.iter().map(|f| &f.0).collect::<Vec<_>>(), fu.iter().map(|f| &f.0).collect::<Vec<_>>(), "same files");
    assert!(fc == fu, "staged bytes differ between the resumed and the uninterrupted run");
}

#[test]
fn crash_and_resume_parquet() {
    if !require(&[Pg, Python]) {
        return;
    }
    crash_and_resume("parquet", &[]);
}

#[test]
fn crash_and_resume_zarr() {
    if !require(&[Pg, Python]) {
        return;
    }
    crash_and_resume("zarr", &[]);
}

#[test]
fn crash_and_resume_zarr_v2() {
    if !require(&[Pg, Python]) {
        return;
    }
    // v2 also has consolidated metadata (.zmetadata), written when the conversion completes.
    crash_and_resume("zarr", &["--zarr-version", "2"]);
}

fn small_source(path: &Path, seed: u64) {
    let spec = RasterSpec { nodata: Some(0.0), ..RasterSpec::geographic(240, 180, 0.05) };
    let mut next = lcg(seed);
    let values: Vec<u16> = (0..240 * 180).map(|_| (next() % 50) as u16).collect();
    write_tif(path, &spec, values);
}

#[test]
fn rerun_of_finished_conversion_is_a_no_op() {
    let dir = tmp();
    let src = dir.path().join("birds.tif");
    small_source(&src, 1);
    let out = dir.path().join("st");
    for format in ["parquet", "zarr"] {
        let name = format!("birds_{format}");
        let args = [
            "convert",
            s(&src),
            "--name",
            &name,
            "--out",
            s(&out),
            "--format",
            format,
            "--resolution",
            "0.1",
            "--method",
            "sum",
            "--window",
            "32",
        ];
        ok(&args);
        let before = files_under(&out.join(&name));
        let o = run_env(&args, &[("RUST_LOG", "info")]);
        assert!(o.status.success());
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains("nothing to do"), "{stderr}");
        assert!(String::from_utf8_lossy(&o.stdout).contains("(0 written now)"));
        assert!(files_under(&out.join(&name)) == before, "{format}: a no-op rerun changed files");
        // Threads do not change the output, so they are not a changed setting.
        let mut other_threads = args.to_vec();
        other_threads.extend(["--threads", "1"]);
        assert!(ok(&other_threads).contains("(0 written now)"));
        assert!(files_under(&out.join(&name)) == before);
    }
}

/// Asserts that `args` is refused with one error line naming `--overwrite` and the `what`,
/// and that nothing in the dataset folder changed.
fn refused(args: &[&str], folder: &Path, what: &str) {
    let before = files_under(folder);
    let line = one_error_line(&fails(args), &["--overwrite", what]);
    assert!(line.contains("converted"), "{line}");
    assert!(files_under(folder) == before, "a refused run changed the output");
}

#[test]
fn changed_source_or_settings_are_refused_unless_overwrite() {
    if !require(&[Pg, Python]) {
        return;
    }
    let dir = tmp();
    let src = dir.path().join("mammals.tif");
    small_source(&src, 1);
    let out = dir.path().join("st");
    let ds = out.join("mammals");
    let base = ["convert", s(&src), "--name", "mammals", "--out", s(&out), "--format", "parquet"];
    let with = |extra: &[&'static str]| -> Vec<&str> { base.iter().copied().chain(extra.iter().copied()).collect() };
    let settings: &[&str] = &["--resolution", "0.1", "--method", "sum", "--window", "32"];
    ok(&with(settings));
    let first = tile_checksums(&out, "mammals");

    // Other settings.
    refused(&with(&["--resolution", "0.1", "--method", "average", "--window", "32"]), &ds, "method");
    refused(&with(&["--resolution", "0.2", "--method", "sum", "--window", "32"]), &ds, "grid");
    refused(&with(&["--resolution", "0.1", "--method", "sum", "--window", "64"]), &ds, "window");
    refused(
        &[
            "convert",
            s(&src),
            "--name",
            "mammals",
            "--out",
            s(&out),
            "--format",
            "zarr",
            "--resolution",
            "0.1",
            "--method",
            "sum",
            "--window",
            "32",
        ],
        &ds,
        "zarr",
    );

    // A changed source: same path, other values (and another size and mtime).
    small_source(&src, 99);
    refused(&with(settings), &ds, "mammals.tif");

    // --overwrite replaces it, and the result is what a fresh run gives.
    let mut ow = with(&["--resolution", "0.1", "--method", "average", "--window", "64"]);
    ow.push("--overwrite");
    ok(&ow);
    let fresh = dir.path().join("fresh");
    ok(&[
        "convert",
        s(&src),
        "--name",
        "mammals",
        "--out",
        s(&fresh),
        "--format",
        "parquet",
        "--resolution",
        "0.1",
        "--method",
        "average",
        "--window",
        "64",
    ]);
    assert_eq!(manifest(&out, "mammals")["kind"]["raster"]["method"], "average");
    assert_eq!(manifest(&out, "mammals")["status"], "complete");
    assert_ne!(tile_checksums(&out, "mammals"), first);
    assert_eq!(tile_checksums(&out, "mammals"), tile_checksums(&fresh, "mammals"));
    same_parquet_cells(&out, &fresh, "mammals");
    // No tile of the old conversion is left behind (64-cell windows: 1 x 2 tiles here).
    let tiles: Vec<String> = std::fs::read_dir(ds.join("tiles"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(tiles.len(), manifest(&out, "mammals")["tile_count"].as_u64().unwrap() as usize, "{tiles:?}");
    let recs = count_records(&ds.join("_tiles"));
    assert_eq!(recs as u64, manifest(&out, "mammals")["tile_count"].as_u64().unwrap());

    // The changed source with the original settings and --overwrite also works.
    let mut ow = with(settings);
    ow.push("--overwrite");
    ok(&ow);
    let fresh2 = dir.path().join("fresh2");
    let mut f2 = vec!["convert", s(&src), "--name", "mammals", "--out", s(&fresh2), "--format", "parquet"];
    f2.extend_from_slice(settings);
    ok(&f2);
    assert_eq!(tile_checksums(&out, "mammals"), tile_checksums(&fresh2, "mammals"));
    assert_ne!(tile_checksums(&out, "mammals"), first, "the new source has other values");
}

/// Writes an uncompressed, striped Byte GeoTIFF: its size depends only on its shape.
fn raw_tif(path: &Path, fill: u8) {
    use gdal::raster::Buffer;
    let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut ds = driver.create_with_band_type::<u8, _>(path, 64, 48, 1).unwrap();
    ds.set_geo_transform(&[0.0, 0.25, 0.0, 12.0, 0.0, -0.25]).unwrap();
    ds.set_spatial_ref(&gdal::spatial_ref::SpatialRef::from_epsg(4326).unwrap()).unwrap();
    let mut buf = Buffer::new((64, 48), vec![fill; 64 * 48]);
    ds.rasterband(1).unwrap().write((0, 0), (64, 48), &mut buf).unwrap();
}

#[test]
fn same_size_rewrite_is_a_changed_source() {
    // A rewrite with other values but the same size, within the same second (scripts that
    // regenerate a raster and convert it again do this): still a changed source.
    let dir = tmp();
    let src = dir.path().join("flat.tif");
    let out = dir.path().join("st");
    raw_tif(&src, 1);
    let size = std::fs::metadata(&src).unwrap().len();
    let args = ["convert", s(&src), "--name", "flat", "--out", s(&out)];
    ok(&args);
    assert_eq!(manifest(&out, "flat")["value_sum"], 64.0 * 48.0);
    raw_tif(&src, 2);
    assert_eq!(std::fs::metadata(&src).unwrap().len(), size, "fixture: same size");
    one_error_line(&fails(&args), &["--overwrite", "flat.tif"]);
    let mut ow = args.to_vec();
    ow.push("--overwrite");
    ok(&ow);
    assert_eq!(manifest(&out, "flat")["value_sum"], 2.0 * 64.0 * 48.0);
}
