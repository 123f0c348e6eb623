//! Reprojection as gdalwarp does it: every method's output is the same whatever the window
//! size and thread count, and equals one `gdalwarp -et 0` run over the whole grid cell by
//! cell; without `--bounds`, the extent is the one gdalwarp suggests (after `-tap`), also for
//! sources whose corners do not transform (full-disk geostationary, polar) and across the
//! antimeridian.

use crate::common::*;
use gdal::raster::GdalType;
use gdal::spatial_ref::SpatialRef;
use gdal::{Dataset, DriverManager};
use std::path::Path;
use std::process::Command;

/// Every method the comparison covers, as gdalwarp names them.
const METHODS: [&str; 11] = ["nearest", "bilinear", "cubic", "average", "mode", "min", "max", "sum", "med", "q1", "q3"];

/// Writes a north-up GeoTIFF in any CRS GDAL understands (`RasterSpec` takes EPSG codes only).
fn write_in<T: GdalType + Copy>(path: &Path, srs: &str, gt: [f64; 6], size: (usize, usize), nodata: f64, v: Vec<T>) {
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut ds = driver.create_with_band_type::<T, _>(path, size.0, size.1, 1).unwrap();
    ds.set_geo_transform(&gt).unwrap();
    ds.set_spatial_ref(&SpatialRef::from_definition(srs).unwrap()).unwrap();
    let mut band = ds.rasterband(1).unwrap();
    band.set_no_data_value(Some(nodata)).unwrap();
    let mut buf = gdal::raster::Buffer::new(size, v);
    band.write((0, 0), size, &mut buf).unwrap();
}

/// A raster's geotransform, size and cells (as f64).
fn read_all(path: &Path) -> ([f64; 6], (usize, usize), Vec<f64>) {
    let ds = Dataset::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (w, h) = ds.raster_size();
    let band = ds.rasterband(1).unwrap();
    (ds.geo_transform().unwrap(), (w, h), band.read_as::<f64>((0, 0), (w, h), (w, h), None).unwrap().data().to_vec())
}

/// rasterstage's output as a Zarr v2 group, read back with GDAL.
fn convert(src: &Path, out: &Path, name: &str, extra: &[&str]) -> (serde_json::Value, Vec<f64>) {
    let mut args = vec!["convert", s(src), "--name", name, "--out", s(out), "--format", "zarr", "--zarr-version", "2"];
    args.extend_from_slice(extra);
    args.push("-q");
    ok(&args);
    let m = manifest(out, name);
    let (_, size, cells) = read_all(&out.join(name).join(format!("{name}.zarr")));
    assert_eq!(size, (m["grid"]["width"].as_u64().unwrap() as usize, m["grid"]["height"].as_u64().unwrap() as usize));
    (m, cells)
}

/// `gdalwarp -et 0` of `src` onto the grid of manifest `m` in one chunk, with rasterstage's
/// output type and nodata.
fn gdalwarp_onto(src: &Path, dst: &Path, m: &serde_json::Value, method: &str) -> Vec<f64> {
    let g = &m["grid"];
    let f = |k: &str| g[k].as_f64().unwrap();
    let (w, h) = (f("width"), f("height"));
    let te = [f("x0"), f("y0") + h * f("dy"), f("x0") + w * f("dx"), f("y0")];
    let nodata = m["kind"]["raster"]["nodata"].as_f64().map_or("nan".to_string(), |v| format!("{v:?}"));
    let mut cmd = Command::new("gdalwarp");
    cmd.args([
        "-q",
        "-overwrite",
        "-et",
        "0",
        "-wm",
        "2000",
        "-r",
        method,
        "-ot",
        m["kind"]["raster"]["dtype"].as_str().unwrap(),
    ]);
    // A grid much larger than the source still splits into chunks (GDAL's source fill
    // ratio heuristics), whatever -wm, and GDAL 3.6's sum kernel leaves seams between
    // chunks (columns of nodata, sums of part of the cells): one chunk for the reference.
    cmd.args(["-wo", "SRC_FILL_RATIO_HEURISTICS=NO"]);
    cmd.args(["-t_srs", g["crs_wkt"].as_str().unwrap(), "-dstnodata", &nodata, "-tr"]);
    cmd.args([format!("{:?}", f("dx")), format!("{:?}", -f("dy")), "-te".into()]);
    cmd.args(te.iter().map(|v| format!("{v:?}")));
    let st = cmd.arg(src).arg(dst).status().unwrap();
    assert!(st.success(), "gdalwarp -r {method} failed");
    let (gt, size, cells) = read_all(dst);
    assert_eq!(gt, [f("x0"), f("dx"), 0.0, f("y0"), 0.0, f("dy")], "gdalwarp chose another grid");
    assert_eq!(size, (w as usize, h as usize));
    cells
}

/// Cell-by-cell equality (NaN equals NaN); returns how many cells hold data.
fn assert_same(got: &[f64], want: &[f64], what: &str) -> usize {
    assert_eq!(got.len(), want.len(), "{what}: sizes differ");
    let differ: Vec<usize> =
        (0..got.len()).filter(|&i| !(got[i] == want[i] || got[i].is_nan() && want[i].is_nan())).collect();
    assert!(
        differ.is_empty(),
        "{what}: {} of {} cells differ, first at {}: {} vs {}",
        differ.len(),
        got.len(),
        differ[0],
        got[differ[0]],
        want[differ[0]]
    );
    got.iter().filter(|v| !v.is_nan()).count()
}

/// `sum` against gdalwarp's single-chunk output: the same cells hold data, and each value
/// is the same sum of the same terms (GDAL's `GWKSumPreserving` weights, computed the same
/// way), added in another order: GDAL adds in the order of its quadtree search, rasterstage
/// in source row-major order (so that no window changes it). Measured on the two scenes
/// below: 11,482 of 17,086 and 12,655 of 15,899 cells bit-identical, the others within
/// 4.9e-16 relative (two ulps). Bound: 1e-14 relative, far below any difference of weights.
fn assert_sum_as_gdalwarp(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: sizes differ");
    let nan_differs = got.iter().zip(want).filter(|(a, b)| a.is_nan() != b.is_nan()).count();
    assert_eq!(nan_differs, 0, "{what}: nodata cells differ");
    let rel = |a: f64, b: f64| if a == b { 0.0 } else { (a - b).abs() / a.abs().max(b.abs()) };
    let worst = got.iter().zip(want).filter(|(a, _)| !a.is_nan()).map(|(a, b)| rel(*a, *b)).fold(0.0, f64::max);
    let exact = got.iter().zip(want).filter(|(a, b)| a == b).count();
    let valid = got.iter().filter(|a| !a.is_nan()).count();
    eprintln!("{what}: {exact} of {valid} cells bit-identical, worst relative difference {worst:e}");
    assert!(worst <= 1e-14, "{what}: a cell differs by {worst:e} (relative) from gdalwarp's");
}

/// The total of the valid cells of `src` (its nodata excluded).
fn source_total(src: &Path) -> f64 {
    let ds = Dataset::open(src).unwrap();
    let nd = ds.rasterband(1).unwrap().no_data_value();
    read_all(src).2.iter().filter(|v| Some(**v) != nd && !v.is_nan()).sum()
}

/// For every method: windows 16 (one thread) and 512 (two threads) give the same cells bit
/// for bit, and they are gdalwarp's (for `sum`, see [`assert_sum_as_gdalwarp`]).
fn every_method_matches(src: &Path, grid: &[&str], dir: &Path) {
    for method in METHODS {
        let out = dir.join(format!("out-{method}"));
        let mut small = grid.to_vec();
        small.extend(["--method", method, "--window", "16", "--threads", "1"]);
        let mut large = grid.to_vec();
        large.extend(["--method", method, "--window", "512", "--threads", "2"]);
        let (m, a) = convert(src, &out, "small", &small);
        let (m2, b) = convert(src, &out, "large", &large);
        assert_eq!(m["grid"], m2["grid"]);
        assert!(m["tile_count"].as_u64().unwrap() > 4, "{method}: the small windows should cut the grid");
        let want = gdalwarp_onto(src, &dir.join(format!("gdalwarp-{method}.tif")), &m, method);
        assert_same(&a, &b, &format!("{method}: window 16 / 1 thread vs window 512 / 2 threads"));
        if method == "sum" {
            assert_sum_as_gdalwarp(&a, &want, "sum vs gdalwarp");
            // The grid covers the whole source: every valid source cell is spread in full.
            let (total, got) = (source_total(src), a.iter().filter(|v| !v.is_nan()).sum::<f64>());
            assert!((got - total).abs() <= 1e-9 * total, "sum: output total {got} vs source total {total}");
            continue;
        }
        let nd = m["kind"]["raster"]["nodata"].as_f64();
        let valid = |v: &[f64]| v.iter().map(|x| if Some(*x) == nd { f64::NAN } else { *x }).collect::<Vec<_>>();
        let cells = assert_same(&valid(&a), &valid(&want), &format!("{method}: rasterstage vs gdalwarp"));
        assert!(cells > 1000, "{method}: only {cells} cells hold data");
    }
}

#[test]
fn projected_to_geographic_matches_gdalwarp_for_every_method() {
    let dir = tmp();
    // A UTM scene whose origin is off the 30 m lattice, with a block of nodata cells.
    let (w, h) = (300, 260);
    let mut r = lcg(14);
    let mut v: Vec<f32> = (0..w * h).map(|_| (r() % 20) as f32).collect();
    for row in 100..110 {
        v[row * w + 40..row * w + 90].fill(-9999.0);
    }
    let src = dir.path().join("scene.utm.tif");
    write_in(&src, "EPSG:32632", [500017.3, 30.0, 0.0, 5200011.7, 0.0, -30.0], (w, h), -9999.0, v);
    every_method_matches(&src, &["--target-crs", "EPSG:4326", "--resolution", "0.0007"], dir.path());
}

#[test]
fn geographic_to_projected_matches_gdalwarp_for_every_method() {
    let dir = tmp();
    // An Int16 DEM-like grid in degrees over central Europe, to ETRS89-LAEA.
    let (w, h) = (240, 180);
    let mut r = lcg(3035);
    let mut v: Vec<i16> =
        (0..w * h).map(|i| ((i % w) as i64 * 3 + (i / w) as i64 * 2 + (r() % 50) as i64) as i16).collect();
    v[50 * w..50 * w + 70].fill(-32768);
    let src = dir.path().join("dem.tif");
    write_in(&src, "EPSG:4326", [10.003, 0.01, 0.0, 50.007, 0.0, -0.01], (w, h), -32768.0, v);
    every_method_matches(&src, &["--target-crs", "EPSG:3035", "--resolution", "1500"], dir.path());
}

#[test]
fn same_crs_cubic_goes_through_the_warper_window_invariant() {
    let dir = tmp();
    let mut spec = RasterSpec::geographic(300, 200, 0.01);
    (spec.x0, spec.y0, spec.nodata) = (5.0, 45.0, Some(-1.0));
    let mut r = lcg(5);
    let src = dir.path().join("g.tif");
    write_tif(&src, &spec, (0..300 * 200).map(|_| (r() % 1000) as f32 / 10.0).collect::<Vec<f32>>());
    for method in ["cubic", "lanczos", "med"] {
        let out = dir.path().join(method);
        let args = |win: &'static str| ["--resolution", "0.025", "--method", method, "--window", win];
        let (m, a) = convert(&src, &out, "small", &args("16"));
        let (_, b) = convert(&src, &out, "large", &args("512"));
        assert_eq!(m["kind"]["raster"]["method"], method);
        assert_same(&a, &b, &format!("same-CRS {method}: window 16 vs 512"));
        let want = gdalwarp_onto(&src, &dir.path().join(format!("{method}.tif")), &m, method);
        assert!(assert_same(&a, &want, &format!("same-CRS {method} vs gdalwarp")) > 1000);
    }
}

/// Without `--bounds`: rasterstage's grid is the one `gdalwarp -tap -tr` picks, and its
/// nearest cells are gdalwarp's.
fn extent_as_gdalwarp(src: &Path, dir: &Path, crs: &str, res: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let warped = dir.join("gdalwarp.tif");
    let st = Command::new("gdalwarp")
        .args(["-q", "-overwrite", "-t_srs", crs, "-tr", res, res, "-tap", "-r", "near", "-et", "0", "-wm", "2000"])
        .arg(src)
        .arg(&warped)
        .status()
        .unwrap();
    assert!(st.success());
    let (gt, size, want) = read_all(&warped);
    let (m, got) =
        convert(src, &dir.join("out"), "d", &["--target-crs", crs, "--resolution", res, "--method", "nearest"]);
    let g = &m["grid"];
    let got_gt =
        [g["x0"].as_f64().unwrap(), g["y0"].as_f64().unwrap(), g["dx"].as_f64().unwrap(), g["dy"].as_f64().unwrap()];
    // rasterstage writes the origin as the double nearest its decimal value (63.15), gdalwarp
    // as 1263 * 0.05 (63.150000000000006): the same lattice, one ulp apart.
    let close = got_gt.iter().zip([gt[0], gt[3], gt[1], gt[5]]).all(|(a, b)| (a - b).abs() <= 1e-9 * gt[1].abs());
    assert!(close, "{}: another grid than gdalwarp's: {got_gt:?} vs {gt:?}", src.display());
    assert_eq!((g["width"].as_u64().unwrap() as usize, g["height"].as_u64().unwrap() as usize), size);
    assert!(assert_same(&got, &want, &format!("{}: nearest cells", src.display())) > 100);
}

fn ramp(w: usize, h: usize) -> Vec<u8> {
    (0..w * h).map(|i| (i % 200 + 1) as u8).collect()
}

#[test]
fn full_disk_geostationary_to_geographic_without_bounds() {
    let dir = tmp();
    // The full disk: the raster's corners lie off the earth, so they do not transform.
    let (n, half) = (200, 5434177.0);
    let res = 2.0 * half / n as f64;
    let src = dir.path().join("full.disk.tif");
    let geos = "+proj=geos +h=35785831 +lon_0=0 +sweep=y +ellps=WGS84 +units=m +no_defs";
    write_in(&src, geos, [-half, res, 0.0, half, 0.0, -res], (n, n), 0.0, ramp(n, n));
    extent_as_gdalwarp(&src, dir.path(), "EPSG:4326", "0.5");
}

#[test]
fn full_disk_sum_is_window_invariant_and_gdalwarps() {
    let dir = tmp();
    // Source cells at the limb have corners off the earth; windows off the disk map nowhere.
    let (n, half) = (120, 5434177.0);
    let res = 2.0 * half / n as f64;
    let src = dir.path().join("disk.tif");
    let geos = "+proj=geos +h=35785831 +lon_0=0 +sweep=y +ellps=WGS84 +units=m +no_defs";
    write_in(&src, geos, [-half, res, 0.0, half, 0.0, -res], (n, n), 0.0, ramp(n, n));
    let out = dir.path().join("out");
    let args = |win: &'static str, j: &'static str| {
        ["--target-crs", "EPSG:4326", "--resolution", "1", "--method", "sum", "--window", win, "--threads", j]
    };
    let (m, a) = convert(&src, &out, "small", &args("16", "1"));
    let (_, b) = convert(&src, &out, "large", &args("512", "2"));
    assert_same(&a, &b, "full-disk sum: window 16 vs 512");
    let want = gdalwarp_onto(&src, &dir.path().join("gdalwarp.tif"), &m, "sum");
    assert_sum_as_gdalwarp(&a, &want, "full-disk sum vs gdalwarp");
}

#[test]
fn upsampled_sum_spreads_each_cell_over_several_and_keeps_the_total() {
    let dir = tmp();
    // 0.01 degree cells (about 700 x 1100 m) onto 300 m cells: each source cell covers
    // several target cells, its share in each from the exact footprint.
    let (w, h) = (60, 40);
    let mut r = lcg(300);
    let v: Vec<i32> = (0..w * h).map(|i| if i % 37 == 0 { -1 } else { (r() % 1000) as i32 }).collect();
    let src = dir.path().join("counts.tif");
    write_in(&src, "EPSG:4326", [10.003, 0.01, 0.0, 50.007, 0.0, -0.01], (w, h), -1.0, v);
    let out = dir.path().join("out");
    // Bounds around the whole footprint: gdalwarp's suggested extent (the default) samples
    // the curved edges and can leave a sliver of the edge cells outside the grid (measured
    // here: 0.12% of the total, the same in gdalwarp's output), and those parts are not
    // summed. The bounds make the grid four times the footprint, where gdalwarp would cut
    // the grid into chunks with seams (see gdalwarp_onto).
    let bounds = ["--bounds", "4310000", "2930000", "4380000", "3000000"];
    let args = |win: &'static str, j: &'static str| {
        let mut a = vec!["--target-crs", "EPSG:3035", "--resolution", "300", "--method", "sum"];
        a.extend(bounds);
        a.extend(["--window", win, "--threads", j]);
        a
    };
    let (m, a) = convert(&src, &out, "small", &args("16", "1"));
    let (_, b) = convert(&src, &out, "large", &args("512", "2"));
    assert_same(&a, &b, "upsampled sum: window 16 vs 512");
    let want = gdalwarp_onto(&src, &dir.path().join("gdalwarp.tif"), &m, "sum");
    assert_sum_as_gdalwarp(&a, &want, "upsampled sum vs gdalwarp");
    let (total, got) = (source_total(&src), a.iter().filter(|v| !v.is_nan()).sum::<f64>());
    assert!((got - total).abs() <= 1e-9 * total, "upsampled sum: output total {got} vs source total {total}");
}

#[test]
fn polar_stereographic_to_geographic_without_bounds() {
    let dir = tmp();
    // Around the north pole (EPSG:3413): the pole is inside, the extent spans every longitude.
    let src = dir.path().join("arctic.tif");
    write_in(&src, "EPSG:3413", [-2e6, 20000.0, 0.0, 2e6, 0.0, -20000.0], (200, 200), 0.0, ramp(200, 200));
    extent_as_gdalwarp(&src, dir.path(), "EPSG:4326", "0.5");
}

#[test]
fn antimeridian_crossing_sources_without_bounds() {
    let dir = tmp();
    // UTM zone 60 reaching east of 180 degrees.
    let utm = dir.path().join("utm60.tif");
    write_in(&utm, "EPSG:32660", [600000.0, 1000.0, 0.0, 7000000.0, 0.0, -1000.0], (300, 200), 0.0, ramp(300, 200));
    extent_as_gdalwarp(&utm, &dir.path().join("a"), "EPSG:4326", "0.05");
    // Pacific Mercator (EPSG:3832, centred on 150 E) spanning 172 E to 170 W.
    let pac = dir.path().join("pacific.tif");
    write_in(&pac, "EPSG:3832", [2.5e6, 10000.0, 0.0, 1e6, 0.0, -10000.0], (200, 200), 0.0, ramp(200, 200));
    extent_as_gdalwarp(&pac, &dir.path().join("b"), "EPSG:4326", "0.1");
}

#[test]
fn reprojection_refusals_name_the_flag() {
    let dir = tmp();
    let src = dir.path().join("arctic.tif");
    write_in(&src, "EPSG:3413", [-2e6, 20000.0, 0.0, 2e6, 0.0, -20000.0], (20, 20), 0.0, ramp(20, 20));
    let out = dir.path().join("o");
    let err = fails(&["convert", s(&src), "--out", s(&out), "--target-crs", "EPSG:4326", "--method", "cubic"]);
    one_error_line(&err, &["needs a target resolution", "--resolution"]);
}
