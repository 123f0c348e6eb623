//! `preview`: the PNG of a generated raster against an independent downsample of the same
//! cells (colours mapped back to values through the ramp), Parquet, Zarr, S3 and merged
//! inputs, mode for categorical data, the tile overlay (committed, uncommitted, failed load),
//! `inspect --preview`, and bad input.

use crate::common::*;
use crate::load::{rs, rs_fails, rs_ok};
use rasterstage::preview::draw::{FAILED, HATCH, HATCH_EVERY, LEGEND_HEIGHT, OUTLINE};
use rasterstage::preview::ramp::Ramp;
use std::path::Path;

const W: usize = 300;
const H: usize = 150;
const RES: f64 = 1.2;
const NODATA: f32 = -9999.0;

/// A Float32 raster with a nodata block and scattered nodata cells, and its values.
fn float_raster(dir: &Path, name: &str) -> (std::path::PathBuf, Vec<f32>) {
    let mut rnd = lcg(42);
    let mut v: Vec<f32> = (0..W * H)
        .map(|i| {
            let (r, c) = ((i / W) as f32, (i % W) as f32);
            // A smooth field plus noise: neighbouring pixels differ, so a misplaced cell shows.
            (r * 3.0 + (c / 7.0).sin() * 40.0 + (rnd() % 1000) as f32 / 25.0) - 50.0
        })
        .collect();
    for r in 0..H {
        for c in 0..W {
            if (r < 40 && c < 60) || (r * 13 + c * 7) % 17 == 0 {
                v[r * W + c] = NODATA;
            }
        }
    }
    let path = dir.join(format!("{name}.tif"));
    let mut spec = RasterSpec::geographic(W, H, RES);
    spec.nodata = Some(NODATA as f64);
    write_tif(&path, &spec, v.clone());
    (path, v)
}

/// A decoded PNG: width, height, RGBA bytes.
struct Png {
    w: usize,
    h: usize,
    rgba: Vec<u8>,
}

impl Png {
    fn read(path: &Path) -> Png {
        let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        let mut reader = png::Decoder::new(file).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.color_type, info.bit_depth), (png::ColorType::Rgba, png::BitDepth::Eight));
        buf.truncate(info.buffer_size());
        Png { w: info.width as usize, h: info.height as usize, rgba: buf }
    }

    fn px(&self, x: usize, y: usize) -> [u8; 4] {
        let i = (y * self.w + x) * 4;
        self.rgba[i..i + 4].try_into().unwrap()
    }

    /// The map's rows (without the legend strip).
    fn map(&self) -> &[u8] {
        &self.rgba[..self.w * (self.h - LEGEND_HEIGHT) * 4]
    }
}

/// The average of the valid cells whose centres fall in each of `pw x ph` pixels, computed
/// here from the source values (NaN = no valid cell).
fn downsample(v: &[f32], pw: usize, ph: usize) -> Vec<f64> {
    let mut sum = vec![0.0; pw * ph];
    let mut n = vec![0u32; pw * ph];
    for r in 0..H {
        for c in 0..W {
            let x = v[r * W + c];
            if x == NODATA {
                continue;
            }
            let px = ((c as f64 + 0.5) * pw as f64 / W as f64).floor() as usize;
            let py = ((r as f64 + 0.5) * ph as f64 / H as f64).floor() as usize;
            sum[py * pw + px] += x as f64;
            n[py * pw + px] += 1;
        }
    }
    sum.iter().zip(&n).map(|(&s, &k)| if k == 0 { f64::NAN } else { s / k as f64 }).collect()
}

/// The ramp step whose colour is nearest to `rgb`.
fn step_of_colour(table: &[[u8; 3]], rgb: [u8; 3]) -> usize {
    let d = |c: &[u8; 3]| (0..3).map(|i| (c[i] as i32 - rgb[i] as i32).pow(2)).sum::<i32>();
    (0..table.len()).min_by_key(|&i| d(&table[i])).unwrap()
}

/// Asserts that the map of `png` shows `expected` through `ramp` over `(lo, hi)`: transparent
/// where there is no value, else within one colour step of the value's.
fn assert_shows(png: &Png, expected: &[f64], ramp: &Ramp, (lo, hi): (f64, f64)) {
    let table = ramp.table();
    let mut painted = 0;
    for (i, &e) in expected.iter().enumerate() {
        let (x, y) = (i % png.w, i / png.w);
        let p = png.px(x, y);
        if e.is_nan() {
            assert_eq!(p[3], 0, "pixel ({x}, {y}) has no valid cell but is painted {p:?}");
            continue;
        }
        assert_eq!(p[3], 255, "pixel ({x}, {y}) should be opaque");
        let want = (((e - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0).round() as i64;
        let got = step_of_colour(&table, [p[0], p[1], p[2]]) as i64;
        assert!((got - want).abs() <= 1, "pixel ({x}, {y}): value {e} is step {want}, the PNG shows step {got}");
        painted += 1;
    }
    assert!(painted > expected.len() / 2, "most pixels have data");
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter().filter(|x| !x.is_nan()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)))
}

/// Percentile `p` of the valid values as the preview defines it: the sorted values' element
/// at index round(p * (n - 1)) (the sample is every value below 65536 of them).
fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    s.sort_by(f64::total_cmp);
    s[(p * (s.len() - 1) as f64).round() as usize]
}

#[test]
fn preview_equals_an_independent_downsample() {
    let dir = tmp();
    let (src, v) = float_raster(dir.path(), "field");
    let root = dir.path().join("st");
    ok(&["convert", s(&src), "--name", "field", "--out", s(&root), "--window", "64", "-q"]);
    let ds = format!("{}/field", s(&root));

    // Factor 3, and a factor that does not divide (300 / 70).
    for (pw, ph) in [(100, 50), (70, 35)] {
        let out = dir.path().join(format!("p{pw}.png"));
        let line = ok(&["preview", &ds, "--out", s(&out), "--width", &pw.to_string()]);
        assert!(line.contains(&format!("field: {pw}x{ph} preview of 300x150 cells")), "{line}");
        assert!(line.contains("15 of 15 tiles committed") && line.contains("average"), "{line}");
        let png = Png::read(&out);
        assert_eq!((png.w, png.h), (pw, ph + LEGEND_HEIGHT));
        let expected = downsample(&v, pw, ph);
        assert_shows(&png, &expected, &Ramp::viridis(), min_max(&expected));
        // The legend strip: opaque, with the ramp's low and high ends under the map.
        let table = Ramp::viridis().table();
        let bar = ph + 6;
        assert_eq!(png.px(2, bar), [table[0][0], table[0][1], table[0][2], 255]);
        assert_eq!(png.px(pw - 3, bar), [table[255][0], table[255][1], table[255][2], 255]);
        assert_eq!(png.px(0, png.h - 1), [255, 255, 255, 255]);
    }

    // --stretch percentile with another ramp, through --from/--dataset.
    let out = dir.path().join("pct.png");
    let line = ok(&[
        "preview",
        "--from",
        s(&root),
        "--dataset",
        "field",
        "--out",
        s(&out),
        "--width",
        "100",
        "--stretch",
        "percentile",
        "--ramp",
        "magma",
    ]);
    assert!(line.contains("percentile magma"), "{line}");
    let expected = downsample(&v, 100, 50);
    let range = (percentile(&expected, 0.02), percentile(&expected, 0.98));
    assert!(range.0 > min_max(&expected).0 && range.1 < min_max(&expected).1);
    assert_shows(&Png::read(&out), &expected, &Ramp::parse("magma").unwrap(), range);
}

#[test]
fn zarr_and_s3_previews_equal_the_local_parquet_one() {
    if !require(&[S3, Python]) {
        return;
    }
    let dir = tmp();
    let (src, v) = float_raster(dir.path(), "field");
    let root = dir.path().join("st");
    ok(&["convert", s(&src), "--name", "pq", "--out", s(&root), "--window", "64", "-q"]);
    ok(&["convert", s(&src), "--name", "zr", "--out", s(&root), "--window", "64", "--format", "zarr", "-q"]);
    ok(&[
        "convert",
        s(&src),
        "--name",
        "z2",
        "--out",
        s(&root),
        "--window",
        "64",
        "--format",
        "zarr",
        "--zarr-version",
        "2",
        "-q",
    ]);
    let bucket = Bucket::new("preview");
    ok(&["convert", s(&src), "--name", "pq", "--out", &bucket.url("st"), "--window", "64", "-q"]);

    let render = |ds: String, tag: &str| {
        let out = dir.path().join(format!("{tag}.png"));
        ok(&["preview", &ds, "--out", s(&out), "--width", "120"]);
        Png::read(&out)
    };
    let pq = render(format!("{}/pq", s(&root)), "pq");
    let expected = downsample(&v, 120, 60);
    assert_shows(&pq, &expected, &Ramp::viridis(), min_max(&expected));
    for (ds, tag) in
        [(format!("{}/zr", s(&root)), "zr"), (format!("{}/z2", s(&root)), "z2"), (bucket.url("st/pq"), "s3")]
    {
        let other = render(ds, tag);
        assert_eq!((other.w, other.h), (pq.w, pq.h), "{tag}");
        assert!(other.map() == pq.map(), "{tag}: the map differs from the Parquet preview's");
    }
}

/// An Int16 raster on the same grid as [`float_raster`], nodata -1.
fn int_raster(dir: &Path) -> std::path::PathBuf {
    let v: Vec<i16> =
        (0..W * H).map(|i| if i % 9 == 0 { -1 } else { ((i / W) as i16 + (i % W) as i16) % 50 }).collect();
    let path = dir.join("counts.tif");
    let mut spec = RasterSpec::geographic(W, H, RES);
    spec.nodata = Some(-1.0);
    write_tif(&path, &spec, v);
    path
}

#[test]
fn merged_columns_look_like_their_inputs() {
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), "field");
    let root = dir.path().join("st");
    ok(&["convert", s(&src), "--name", "field", "--out", s(&root), "--window", "64", "-q"]);
    ok(&["convert", s(&int_raster(dir.path())), "--name", "counts", "--out", s(&root), "--window", "64", "-q"]);
    let render = |args: &[&str], tag: &str| {
        let out = dir.path().join(format!("{tag}.png"));
        let mut a = vec!["preview", "--out", s(&out), "--width", "150"];
        a.extend_from_slice(args);
        let line = ok(&a);
        (Png::read(&out), line)
    };
    let field = render(&[&format!("{}/field", s(&root))], "field").0;
    let counts = render(&[&format!("{}/counts", s(&root))], "counts").0;
    for format in ["parquet", "zarr"] {
        let name = format!("m_{format}");
        let out = root.join(&name);
        ok(&["merge", "--from", s(&root), "--datasets", "field,counts", "--out", s(&out), "--format", format, "-q"]);
        let ds = format!("{}/{name}", s(&root));
        // The first column by default, then each by name.
        let (first, line) = render(&[&ds], &format!("{name}_default"));
        assert!(line.contains(&format!("{name} column field")), "{line}");
        assert!(first.map() == field.map(), "{format}: default column");
        let (f, _) = render(&[&ds, "--column", "field"], &format!("{name}_f"));
        assert!(f.map() == field.map(), "{format}: column field differs from dataset field");
        let (c, _) = render(&[&ds, "--column", "counts"], &format!("{name}_c"));
        assert!(c.map() == counts.map(), "{format}: column counts differs from dataset counts");
        let err = fails(&["preview", &ds, "--column", "nope", "--out", s(&dir.path().join("x.png"))]);
        one_error_line(&err, &["--column", "nope", "field, counts"]);
    }
}

#[test]
fn categorical_data_shows_the_mode() {
    let dir = tmp();
    let (w, h) = (64, 32);
    let mut rnd = lcg(3);
    // Classes 1..=5 in 2x2 blocks biased to one class, nodata 0.
    let v: Vec<u8> = (0..w * h)
        .map(|i| {
            let (r, c) = (i / w, i % w);
            if (r / 4 + c / 4) % 7 == 0 {
                0
            } else if rnd() % 3 == 0 {
                (rnd() % 5 + 1) as u8
            } else {
                ((r / 4 * 3 + c / 4) % 5 + 1) as u8
            }
        })
        .collect();
    let src = dir.path().join("lc.tif");
    let mut spec = RasterSpec::geographic(w, h, 1.0);
    spec.nodata = Some(0.0);
    write_tif(&src, &spec, v.clone());
    let root = dir.path().join("st");
    // convert --method mode is how convert stages categorical data (here onto a grid of
    // half the cell size, so each source cell is 2x2 staged cells and 4x4 staged cells,
    // 2x2 source cells, fall in each preview pixel below).
    ok(&["convert", s(&src), "--name", "lc", "--out", s(&root), "--resolution", "0.5", "--method", "mode", "-q"]);
    assert_eq!(manifest(&root, "lc")["kind"]["raster"]["method"], "mode");
    let out = dir.path().join("lc.png");
    let line = ok(&["preview", &format!("{}/lc", s(&root)), "--out", s(&out), "--width", "32"]);
    assert!(line.contains("(mode, linear viridis)"), "{line}");
    // The mode of each 2x2 block, ties to the smallest class, computed here.
    let (pw, ph) = (32, 16);
    let mut expected = vec![f64::NAN; pw * ph];
    for py in 0..ph {
        for px in 0..pw {
            let mut n = [0u32; 6];
            for r in 2 * py..2 * py + 2 {
                for c in 2 * px..2 * px + 2 {
                    n[v[r * w + c] as usize] += 1;
                }
            }
            let best = (1..6).max_by(|&a, &b| n[a].cmp(&n[b]).then(b.cmp(&a))).unwrap();
            if n[best] > 0 {
                expected[py * pw + px] = best as f64;
            }
        }
    }
    let png = Png::read(&out);
    assert_shows(&png, &expected, &Ramp::viridis(), min_max(&expected));
    // --method average overrides: a mixed block shows a value between classes.
    let out2 = dir.path().join("avg.png");
    let line = ok(&["preview", &format!("{}/lc", s(&root)), "--out", s(&out2), "--width", "32", "--method", "average"]);
    assert!(line.contains("(average,"), "{line}");
}

/// Ids of the committed tiles of a converting dataset (its commit records).
fn tile_ids(root: &Path, name: &str) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(root.join(name).join("_tiles"))
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".json").to_string()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Every window id of the 300x150 grid in 64-cell windows.
fn all_windows() -> Vec<(usize, usize)> {
    (0..H).step_by(64).flat_map(|r| (0..W).step_by(64).map(move |c| (r, c))).collect()
}

#[test]
fn tile_overlay_shows_committed_uncommitted_and_failed_tiles() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), "field");
    let root = dir.path().join("st");
    let convert = ["convert", s(&src), "--name", "field", "--out", s(&root), "--window", "64", "-q"];
    // Shard 0 of 2 commits about half of the tiles and leaves the dataset converting.
    let mut first = convert.to_vec();
    first.extend(["--shard", "0/2"]);
    ok(&first);
    assert_eq!(manifest(&root, "field")["status"], "converting");
    let done = tile_ids(&root, "field");
    assert!(!done.is_empty() && done.len() < 15, "{done:?}");

    // One pixel per cell: tile (r, c) covers pixels [c, c + 64) x [r, r + 64).
    let ds = format!("{}/field", s(&root));
    let out = dir.path().join("tiles.png");
    let line = ok(&["preview", &ds, "--out", s(&out), "--width", "300", "--tiles"]);
    assert!(line.contains(&format!("{} of 15 tiles committed", done.len())), "{line}");
    let png = Png::read(&out);
    for (r, c) in all_windows() {
        let id = format!("r{r}_c{c}");
        let (x1, y1) = ((c + 64).min(W), (r + 64).min(H));
        if done.contains(&id) {
            for (x, y) in [(c, r + 20), (x1 - 1, r + 20), (c + 20, r), (c + 20, y1 - 1)] {
                assert_eq!(png.px(x, y), OUTLINE, "committed {id}: border pixel ({x}, {y})");
            }
        } else {
            // Inside, away from every border: hatch lines over nothing (no tile was read).
            for y in r + 2..y1 - 2 {
                for x in c + 2..x1 - 2 {
                    let want = if (x + y) % HATCH_EVERY == 0 { HATCH } else { [0, 0, 0, 0] };
                    assert_eq!(png.px(x, y), want, "uncommitted {id}: pixel ({x}, {y})");
                }
            }
        }
    }

    // Finish the conversion, then make one tile fail to load: its object is damaged while
    // load runs, and repaired afterwards (as after a fixed disk or a retried upload).
    ok(&convert);
    let tile = root.join("field/tiles/r64_c128.parquet");
    let good = std::fs::read(&tile).unwrap();
    std::fs::write(&tile, &good[..good.len() / 2]).unwrap();
    let sc = Schema::new("preview");
    let err = rs_fails(&["load", "--from", s(&root), "--schema", &sc.name]);
    assert!(err.contains("1 of 15 tiles failed"), "{err}");
    std::fs::write(&tile, &good).unwrap();

    let out = dir.path().join("loads.png");
    let args = [
        "preview",
        &ds,
        "--out",
        s(&out),
        "--width",
        "300",
        "--tiles",
        "--database-url",
        &db_url(),
        "--schema",
        &sc.name,
    ];
    let line = rs_ok(&args);
    assert!(line.contains("1 tile not loaded (red): r64_c128"), "{line}");
    let png = Png::read(&out);
    for (r, c) in all_windows() {
        let (x1, y1) = ((c + 64).min(W), (r + 64).min(H));
        if (r, c) == (64, 128) {
            assert_eq!(png.px(c, r + 20), FAILED);
            assert_eq!(png.px(x1 - 1, y1 - 1), FAILED);
            // Inside: the data tinted red (no transparent pixel, red above green and blue).
            let p = png.px(c + 10, r + 10);
            assert!(p[3] >= 128 && p[0] >= 128 && p[0] > p[1] && p[0] > p[2], "{p:?}");
        } else {
            assert_eq!(png.px(c, r + 20), OUTLINE, "r{r}_c{c}");
            let p = png.px(c + 10, r + 10);
            assert!(p[3] == 0 || p[0] < 128 || p[1] > 100, "r{r}_c{c} looks tinted: {p:?}");
        }
    }
    // Once loaded, nothing is red; a schema without the table has nothing loaded yet.
    rs_ok(&["load", "--from", s(&root), "--schema", &sc.name]);
    let line = rs_ok(&args);
    assert!(line.contains("every committed tile loaded"), "{line}");
    let other = Schema::new("preview_none");
    let line =
        rs_ok(&["preview", &ds, "--out", s(&out), "--tiles", "--database-url", &db_url(), "--schema", &other.name]);
    assert!(line.contains("no table loaded yet"), "{line}");
}

#[test]
fn inspect_preview_writes_a_png_beside_each_summary() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), "field");
    let root = dir.path().join("st");
    ok(&["convert", s(&src), "--name", "a", "--out", s(&root), "--window", "64", "-q"]);
    ok(&["convert", s(&src), "--name", "b", "--out", s(&root), "--window", "64", "--format", "zarr", "-q"]);
    ok(&["inspect", s(&root)]);
    assert!(!root.join("a/preview.png").exists(), "opt-in: plain inspect writes nothing");
    let out = bin().args(["inspect", s(&root), "--preview"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in ["a", "b"] {
        let p = root.join(name).join("preview.png");
        assert!(stderr.contains(&format!("{name}: preview -> ")), "{stderr}");
        let png = Png::read(&p);
        assert_eq!((png.w, png.h), (1024, 512 + LEGEND_HEIGHT));
    }
    // The staged data is untouched: convert, load and verify still see the same datasets.
    let again = ok(&["convert", s(&src), "--name", "a", "--out", s(&root), "--window", "64"]);
    assert!(again.contains("0 written now"), "{again}");
    let sc = Schema::new("inspect_preview");
    rs_ok(&["load", "--from", s(&root), "--schema", &sc.name]);
    rs_ok(&["verify", "--from", s(&root), "--schema", &sc.name]);
}

#[test]
fn bad_input_gets_one_clear_line() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), "field");
    let root = dir.path().join("st");
    ok(&["convert", s(&src), "--name", "field", "--out", s(&root), "--window", "64", "-q"]);
    let ds = format!("{}/field", s(&root));
    let out = dir.path().join("out.png");
    let o = s(&out);
    let (nope, missing) = (format!("{}/nope", s(&root)), format!("{}/field", s(&dir.path().join("missing"))));
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["preview", &nope, "--out", o], vec!["nope", "staged there: field"]),
        (vec!["preview", "--from", s(&root), "--dataset", "nope", "--out", o], vec!["nope", "field"]),
        (vec!["preview", &ds, "--out", o, "--width", "0"], vec!["--width", "0", "1 to 8192"]),
        (vec!["preview", &ds, "--out", o, "--width", "100000"], vec!["--width", "100000"]),
        (vec!["preview", &ds, "--out", o, "--width", "99999999999999999999999"], vec!["--width"]),
        (vec!["preview", &ds, "--out", o, "--width", "abc"], vec!["--width", "abc"]),
        (vec!["preview", &ds, "--out", "/nonexistent-folder/x.png"], vec!["--out", "/nonexistent-folder/x.png"]),
        (vec!["preview", &ds, "--out", s(dir.path())], vec!["--out", "folder"]),
        (vec!["preview", &ds, "--out", o, "--column", "value"], vec!["--column", "not a merged one"]),
        (vec!["preview", &ds, "--out", o, "--ramp", "rainbow"], vec!["--ramp", "rainbow", "viridis"]),
        (vec!["preview", &ds, "--out", o, "--stretch", "log"], vec!["--stretch", "log", "percentile"]),
        (vec!["preview", &ds, "--out", o, "--method", "sum"], vec!["--method", "sum", "mode"]),
        (vec!["preview", &ds, "--out", o, "--database-url", "postgres://x@127.0.0.1:1/db"], vec!["--tiles"]),
        (vec!["preview", &missing, "--out", o], vec!["missing"]),
    ];
    for (args, needles) in cases {
        let err = fails(&args);
        one_error_line(&err, &needles);
        assert!(!out.exists(), "{args:?} left {o} behind");
    }
    // Nothing half-written: no temporary file is left beside the output either.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")), "{left:?}");
    // A damaged tile stops the preview, naming it and what rewrites it.
    let tile = root.join("field/tiles/r64_c128.parquet");
    let good = std::fs::read(&tile).unwrap();
    std::fs::write(&tile, &good[..good.len() / 2]).unwrap();
    one_error_line(&fails(&["preview", &ds, "--out", o]), &["r64_c128", "run convert again"]);
    assert!(!out.exists());
    std::fs::write(&tile, &good).unwrap();
    // A database that cannot be reached fails before anything is written.
    let err = String::from_utf8_lossy(
        &rs(&["preview", &ds, "--out", o, "--tiles", "--database-url", "postgres://x@127.0.0.1:1/db"], &[]).stderr,
    )
    .into_owned();
    one_error_line(&err, &["cannot connect to PostgreSQL", "port 1"]);
    assert!(!out.exists());
}
