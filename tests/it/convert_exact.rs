//! Exactness of convert: an independent brute-force reference, gdalwarp on aligned integer
//! factors, sum conservation for any factor, and invariance to window size and threads.

use crate::common::*;
use gdal::Dataset;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// A Byte raster with nodata 255 and values 0..=9 (few categories, so modes are meaningful).
fn byte_raster(dir: &Path, w: usize, h: usize, res: f64, seed: u64) -> (std::path::PathBuf, RasterSpec, Vec<u8>) {
    let mut spec = RasterSpec::geographic(w, h, res);
    spec.nodata = Some(255.0);
    let mut r = lcg(seed);
    let vals: Vec<u8> = (0..w * h).map(|_| if r() % 7 == 0 { 255 } else { (r() % 10) as u8 }).collect();
    let p = dir.join(format!("b{seed}.tif"));
    write_tif(&p, &spec, vals.clone());
    (p, spec, vals)
}

/// A Float32 raster with NaN nodata and a smooth field.
fn float_raster(dir: &Path, w: usize, h: usize, res: f64, seed: u64) -> (std::path::PathBuf, RasterSpec, Vec<f32>) {
    let mut spec = RasterSpec::geographic(w, h, res);
    spec.nodata = Some(f64::NAN);
    let mut r = lcg(seed);
    let vals: Vec<f32> = (0..w * h)
        .map(|i| if r() % 9 == 0 { f32::NAN } else { ((i % w) as f32 * 0.37).sin() * 100.0 + (i / w) as f32 * 0.5 })
        .collect();
    let p = dir.join(format!("f{seed}.tif"));
    write_tif(&p, &spec, vals.clone());
    (p, spec, vals)
}

/// Brute-force reference: every output cell against every overlapping source cell, with the
/// overlap computed from coordinates. Returns (row, col) -> value for cells with valid input.
fn reference(spec: &RasterSpec, vals: &[f64], res: f64, method: &str) -> HashMap<(i64, i64), f64> {
    let x0 = (spec.x0 / res + 1e-9).floor() * res;
    let y1 = (spec.y0 / res - 1e-9).ceil() * res;
    let w = ((spec.x0 + spec.width as f64 * spec.res - x0) / res - 1e-9).ceil() as usize;
    let h = ((y1 - (spec.y0 - spec.height as f64 * spec.res)) / res - 1e-9).ceil() as usize;
    let mut out = HashMap::new();
    for i in 0..h {
        let (top, bot) = (y1 - i as f64 * res, y1 - (i + 1) as f64 * res);
        for j in 0..w {
            let (left, right) = (x0 + j as f64 * res, x0 + (j + 1) as f64 * res);
            let mut s = 0.0;
            let mut a = 0.0;
            let mut areas: Vec<(f64, f64)> = Vec::new();
            for r in 0..spec.height {
                let (st, sb) = (spec.y0 - r as f64 * spec.res, spec.y0 - (r + 1) as f64 * spec.res);
                let oy = (top.min(st) - bot.max(sb)) / spec.res;
                if oy <= 1e-9 {
                    continue;
                }
                for c in 0..spec.width {
                    let (sl, sr) = (spec.x0 + c as f64 * spec.res, spec.x0 + (c + 1) as f64 * spec.res);
                    let ox = (right.min(sr) - left.max(sl)) / spec.res;
                    let v = vals[r * spec.width + c];
                    if ox <= 1e-9 || v.is_nan() {
                        continue;
                    }
                    s += v * ox * oy;
                    a += ox * oy;
                    areas.push((v, ox * oy));
                }
            }
            if a == 0.0 {
                continue;
            }
            let v = match method {
                "sum" => s,
                "average" => s / a,
                "min" => areas.iter().map(|p| p.0).fold(f64::INFINITY, f64::min),
                "max" => areas.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max),
                "mode" => {
                    let mut by: Vec<(f64, f64)> = Vec::new();
                    for (v, w) in areas {
                        match by.iter_mut().find(|p| p.0 == v) {
                            Some(p) => p.1 += w,
                            None => by.push((v, w)),
                        }
                    }
                    by.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
                    let best = by.iter().map(|p| p.1).fold(0.0, f64::max);
                    by.iter().find(|p| (p.1 - best).abs() < 1e-9).unwrap().0
                }
                _ => unreachable!(),
            };
            out.insert((i as i64, j as i64), v);
        }
    }
    out
}

fn with_nodata_as_nan(vals: &[u8]) -> Vec<f64> {
    vals.iter().map(|&v| if v == 255 { f64::NAN } else { v as f64 }).collect()
}

fn assert_matches(got: &[(i64, i64, f64)], want: &HashMap<(i64, i64), f64>, rel: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: number of valid cells");
    for &(r, c, v) in got {
        let e = want.get(&(r, c)).unwrap_or_else(|| panic!("{what}: unexpected cell ({r}, {c})"));
        assert!((v - e).abs() <= rel * e.abs().max(1.0), "{what}: cell ({r}, {c}) = {v}, expected {e}");
    }
}

#[test]
fn areal_methods_match_brute_force_on_non_integer_factors() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    // 0.05 -> 0.03 and 0.05 -> 0.07 (non-integer, down and up), prime-sized source.
    let (tif, spec, vals) = byte_raster(dir.path(), 37, 23, 0.05, 1);
    let fv = with_nodata_as_nan(&vals);
    for res in [0.03, 0.07, 0.02] {
        for method in ["sum", "average", "mode", "min", "max"] {
            let out = dir.path().join(format!("o_{res}_{method}"));
            ok(&[
                "convert",
                s(&tif),
                "--name",
                "d",
                "--out",
                s(&out),
                "--resolution",
                &res.to_string(),
                "--method",
                method,
                "--window",
                "16",
                "-q",
            ]);
            let got = parquet_cells(&out, "d");
            let want = reference(&spec, &fv, res, method);
            let tol = if method == "average" { 1e-6 } else { 1e-9 };
            assert_matches(&got, &want, tol, &format!("{method} at {res}"));
        }
    }
}

#[test]
fn sum_conserves_totals_for_any_factor() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let (tif, _, vals) = byte_raster(dir.path(), 101, 53, 0.05, 2);
    let total: f64 = vals.iter().filter(|&&v| v != 255).map(|&v| v as f64).sum();
    for res in ["0.03", "0.02", "0.07", "0.05000001", "0.1", "0.3"] {
        let out = dir.path().join(format!("o{res}"));
        ok(&["convert", s(&tif), "--name", "d", "--out", s(&out), "--resolution", res, "--method", "sum", "-q"]);
        let m = manifest(&out, "d");
        let staged = m["value_sum"].as_f64().unwrap();
        assert!((staged - total).abs() < 1e-9 * total, "{res}: staged {staged} vs source {total}");
        let duck: f64 =
            duckdb_row(&format!("SELECT sum(value) FROM read_parquet('{}/d/tiles/*.parquet')", out.display()))
                .parse()
                .unwrap();
        assert!((duck - total).abs() < 1e-9 * total, "{res}: duckdb {duck} vs {total}");
    }
}

/// Runs gdalwarp as the independent reference and returns its cells with valid values.
fn gdalwarp(src: &Path, dst: &Path, method: &str, res: f64, ot: &str) -> HashMap<(i64, i64), f64> {
    let st = Command::new("gdalwarp")
        .args(["-q", "-overwrite", "-r", method, "-tr", &res.to_string(), &res.to_string(), "-tap", "-ot", ot])
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success());
    gdalwarp_cells(dst)
}

#[test]
fn matches_gdalwarp_on_aligned_integer_factors() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let (tif, _, _) = byte_raster(dir.path(), 600, 300, 1.0 / 120.0, 3);
    // gdalwarp breaks mode ties by scan order, we by the smallest value: give each 6x6 block
    // a dominant category so that no cell ties.
    let mut spec = RasterSpec::geographic(600, 300, 1.0 / 120.0);
    spec.nodata = Some(255.0);
    let mut r = lcg(33);
    let cats: Vec<u8> = (0..600 * 300)
        .map(|i| if r() % 10 < 7 { ((i / 600 / 6 + i % 600 / 6) % 9) as u8 } else { (r() % 10) as u8 })
        .collect();
    let cat_tif = dir.path().join("cats.tif");
    write_tif(&cat_tif, &spec, cats);
    for (method, ot, tol) in [
        ("average", "Float32", 1e-6),
        ("min", "Byte", 0.0),
        ("max", "Byte", 0.0),
        ("near", "Byte", 0.0),
        ("mode", "Byte", 0.0),
    ] {
        let tif = if method == "mode" { cat_tif.clone() } else { tif.clone() };
        let want = gdalwarp(&tif, &dir.path().join(format!("{method}.tif")), method, 0.05, ot);
        let out = dir.path().join(method);
        ok(&["convert", s(&tif), "--name", "d", "--out", s(&out), "--resolution", "0.05", "--method", method, "-q"]);
        let got = parquet_cells(&out, "d");
        assert_matches(&got, &want, tol, &format!("gdalwarp {method}"));
    }
}

#[test]
fn output_is_identical_for_any_window_size_and_thread_count() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    // Prime sizes so that windows never divide the grid evenly.
    let (tif, _, _) = float_raster(dir.path(), 2003, 1009, 1.0 / 120.0, 4);
    for method in ["sum", "average", "mode", "bilinear"] {
        let mut first: Option<Vec<(i64, i64, f64)>> = None;
        for (window, threads) in [("256", "1"), ("1000", "2"), ("2048", "2"), ("256", "2")] {
            let out = dir.path().join(format!("{method}_{window}_{threads}"));
            ok(&[
                "convert",
                s(&tif),
                "--name",
                "d",
                "--out",
                s(&out),
                "--resolution",
                "0.0333333333333333",
                "--method",
                method,
                "--window",
                window,
                "--threads",
                threads,
                "-q",
            ]);
            let cells = parquet_cells(&out, "d");
            assert!(!cells.is_empty());
            match &first {
                None => first = Some(cells),
                // Bit-identical: f64 equality, not a tolerance.
                Some(f) => assert!(f == &cells, "{method}: window {window} x {threads} threads differs"),
            }
        }
    }
}

#[test]
fn passthrough_copies_cells_bit_exactly() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let (tif, spec, vals) = float_raster(dir.path(), 509, 251, 0.05, 5);
    let out = dir.path().join("o");
    ok(&["convert", s(&tif), "--name", "d", "--out", s(&out), "--resolution", "0.05", "-q"]);
    let m = manifest(&out, "d");
    assert_eq!(m["kind"]["raster"]["method"], "passthrough");
    assert_eq!(m["kind"]["raster"]["dtype"], "Float32");
    let got = parquet_cells(&out, "d");
    let valid: Vec<(i64, i64, f64)> = vals
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_nan())
        .map(|(i, v)| ((i / spec.width) as i64, (i % spec.width) as i64, *v as f64))
        .collect();
    assert_eq!(got, valid);
}

/// The Parquet floor of scripts/bench-growth.sh (examples/parquet_floor.rs) writes, from the
/// cells alone, exactly the tiles `convert` writes from the GeoTIFF, and nothing else: the
/// benchmark's rasterstage/floor ratio compares the same bytes.
#[test]
fn parquet_floor_writes_the_tiles_convert_writes() {
    let dir = tmp();
    // NaN cells too: rows with and without nodata take different paths in the writer.
    let (w, h) = (601, 301);
    let (tif, _, vals) = float_raster(dir.path(), w, h, 0.5, 6);
    let conv = dir.path().join("conv");
    ok(&["convert", s(&tif), "--name", "d", "--out", s(&conv), "--window", "256", "--threads", "2", "-q"]);
    let floor = dir.path().join("floor");
    let o =
        rasterstage::config::Overrides { out: Some(s(&floor).to_string()), window: Some(256), ..Default::default() };
    let jobs = rasterstage::config::convert_jobs(None, Some(s(&tif)), Some("d"), &o).unwrap();
    let cells = |[row0, col0, rows, cols]: [usize; 4]| -> Vec<f32> {
        (row0..row0 + rows).flat_map(|r| vals[r * w + col0..r * w + col0 + cols].iter().copied()).collect()
    };
    let sum = rasterstage::convert::parquet_floor(&jobs.jobs[0], 2, &cells).unwrap();
    let valid = vals.iter().filter(|v| !v.is_nan()).count() as u64;
    assert_eq!(sum, rasterstage::convert::FloorSummary { windows: 3 * 2, rows: valid });
    assert_eq!(manifest(&conv, "d")["row_count"], valid);
    let tiles = files_under(&conv.join("d/tiles"));
    assert_eq!(tiles.len(), 6);
    assert!(
        files_under(&floor.join("d"))
            == tiles.iter().map(|(p, b)| (format!("tiles/{p}"), b.clone())).collect::<Vec<_>>()
    );
}

#[test]
fn integer_types_and_numeric_nodata() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let mut spec = RasterSpec::geographic(211, 97, 0.05);
    spec.nodata = Some(-9999.0);
    let mut r = lcg(6);
    let vals: Vec<i32> =
        (0..211 * 97).map(|_| if r() % 5 == 0 { -9999 } else { (r() % 100000) as i32 - 50000 }).collect();
    let tif = dir.path().join("i.tif");
    write_tif(&tif, &spec, vals.clone());
    let total: f64 = vals.iter().filter(|&&v| v != -9999).map(|&v| v as f64).sum();
    let out = dir.path().join("o");
    ok(&["convert", s(&tif), "--name", "d", "--out", s(&out), "--resolution", "0.15", "--method", "sum", "-q"]);
    assert!((manifest(&out, "d")["value_sum"].as_f64().unwrap() - total).abs() < 1e-6 * total.abs());
    // mode keeps the type and the nodata.
    let out = dir.path().join("m");
    ok(&["convert", s(&tif), "--name", "d", "--out", s(&out), "--resolution", "0.15", "--method", "mode", "-q"]);
    let m = manifest(&out, "d");
    assert_eq!(m["kind"]["raster"]["dtype"], "Int32");
    assert_eq!(m["kind"]["raster"]["nodata"], -9999.0);
    let fv: Vec<f64> = vals.iter().map(|&v| if v == -9999 { f64::NAN } else { v as f64 }).collect();
    assert_matches(&parquet_cells(&out, "d"), &reference(&spec, &fv, 0.15, "mode"), 0.0, "Int32 mode");
    // A cell with no valid input is nodata, never 0 (the original pipeline's bug).
    let mut spec2 = spec.clone();
    spec2.width = 4;
    spec2.height = 4;
    let tif2 = dir.path().join("empty.tif");
    write_tif(&tif2, &spec2, vec![-9999i32; 16]);
    let out = dir.path().join("e");
    ok(&["convert", s(&tif2), "--name", "d", "--out", s(&out), "--resolution", "0.1", "--method", "average", "-q"]);
    assert_eq!(manifest(&out, "d")["row_count"], 0);
}

#[test]
fn reprojection_matches_gdalwarp() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let mut spec = RasterSpec::geographic(360, 170, 0.5);
    spec.y0 = 85.0;
    spec.nodata = Some(255.0);
    let mut r = lcg(7);
    let vals: Vec<u8> = (0..360 * 170).map(|_| (r() % 250) as u8).collect();
    let tif = dir.path().join("g.tif");
    write_tif(&tif, &spec, vals);
    let warped = dir.path().join("w.tif");
    let st = Command::new("gdalwarp")
        .args(["-q", "-t_srs", "EPSG:3857", "-tr", "100000", "100000", "-tap", "-r", "near", "-et", "0"])
        .arg(&tif)
        .arg(&warped)
        .status()
        .unwrap();
    assert!(st.success());
    let ds = Dataset::open(&warped).unwrap();
    let gt = ds.geo_transform().unwrap();
    let out = dir.path().join("o");
    ok(&[
        "convert",
        s(&tif),
        "--name",
        "d",
        "--out",
        s(&out),
        "--target-crs",
        "EPSG:3857",
        "--resolution",
        "100000",
        "--method",
        "nearest",
        "--window",
        "100",
        "-q",
    ]);
    let m = manifest(&out, "d");
    assert_eq!(m["grid"]["epsg"], 3857);
    assert_eq!(m["grid"]["x0"].as_f64().unwrap(), gt[0]);
    assert_eq!(m["grid"]["y0"].as_f64().unwrap(), gt[3]);
    let want = gdalwarp_cells(&warped);
    let got = parquet_cells(&out, "d");
    assert_matches(&got, &want, 0.0, "reprojected nearest");
}

fn gdalwarp_cells(path: &Path) -> HashMap<(i64, i64), f64> {
    let ds = Dataset::open(path).unwrap();
    let band = ds.rasterband(1).unwrap();
    let nd = band.no_data_value();
    let (w, h) = ds.raster_size();
    let buf = band.read_as::<f64>((0, 0), (w, h), (w, h), None).unwrap();
    buf.data()
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_nan() && Some(**v) != nd)
        .map(|(i, v)| (((i / w) as i64, (i % w) as i64), *v))
        .collect()
}
