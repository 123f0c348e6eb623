//! The first command on the files people have: `rasterstage convert FILE --out DIR` with no
//! other flag copies the source grid as it is (whatever its origin), names the dataset after
//! the file, and every refusal names the flag that fixes it.

use crate::common::*;
use std::path::Path;

/// A UTM raster (EPSG:32633) with 30 m cells and an origin off the 30 m lattice, like a
/// Landsat scene cut at a pixel corner that is not a multiple of 30.
fn utm_spec() -> RasterSpec {
    RasterSpec {
        width: 300,
        height: 170,
        x0: 500_012.5,
        y0: 5_300_007.5,
        res: 30.0,
        epsg: 32633,
        nodata: None,
        block: 64,
    }
}

/// `convert FILE --out DIR` alone: succeeds, returns the summary, and the dataset's grid is
/// the source's geotransform exactly.
fn convert_plain(src: &Path, out: &Path, name: &str, spec: &RasterSpec) -> String {
    let stdout = ok(&["convert", s(src), "--out", s(out), "-q"]);
    assert!(stdout.contains("passthrough: the source grid as it is"), "{stdout}");
    assert!(stdout.starts_with(&format!("{name} ")), "the summary prints the chosen name: {stdout}");
    let m = manifest(out, name);
    let g = &m["grid"];
    assert_eq!(g["x0"].as_f64().unwrap().to_bits(), spec.x0.to_bits(), "{g}");
    assert_eq!(g["y0"].as_f64().unwrap().to_bits(), spec.y0.to_bits(), "{g}");
    assert_eq!(g["dx"].as_f64().unwrap().to_bits(), spec.res.to_bits(), "{g}");
    assert_eq!(g["dy"].as_f64().unwrap().to_bits(), (-spec.res).to_bits(), "{g}");
    assert_eq!((g["width"].as_u64().unwrap(), g["height"].as_u64().unwrap()), (spec.width as u64, spec.height as u64));
    assert_eq!(m["kind"]["raster"]["method"], "passthrough");
    stdout
}

/// The staged cells equal `values` cell by cell (bit-exact), `nodata` cells absent.
fn same_cells(out: &Path, name: &str, spec: &RasterSpec, values: &[f64], nodata: Option<f64>) {
    let want: Vec<(i64, i64, f64)> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| Some(**v) != nodata)
        .map(|(i, v)| ((i / spec.width) as i64, (i % spec.width) as i64, *v))
        .collect();
    let got = parquet_cells(out, name);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!(g.0 == w.0 && g.1 == w.1 && g.2.to_bits() == w.2.to_bits(), "got {g:?}, want {w:?}");
    }
}

#[test]
fn utm_off_lattice_origin_is_copied_as_it_is() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let (src, out) = (dir.path().join("LC08_B4.TIF"), dir.path().join("st"));
    let spec = utm_spec();
    let mut next = lcg(41);
    let values: Vec<f32> = (0..spec.width * spec.height).map(|_| (next() % 100_000) as f32 / 7.0).collect();
    write_tif(&src, &spec, values.clone());
    convert_plain(&src, &out, "lc08_b4", &spec);
    same_cells(&out, "lc08_b4", &spec, &values.iter().map(|v| *v as f64).collect::<Vec<_>>(), None);
    // value_sum is the correctly rounded sum of the tile sums (as Python's math.fsum), not a
    // left-to-right sum that drifts in the last bits.
    let out3 = dir.path().join("st3");
    ok(&["convert", s(&src), "--out", s(&out3), "--window", "32", "-q"]);
    let m = manifest(&out3, "lc08_b4");
    let sums: Vec<String> =
        m["tiles"].as_array().unwrap().iter().map(|t| format!("{:?}", t["value_sum"].as_f64().unwrap())).collect();
    assert!(sums.len() > 1);
    let fsum = py(&format!("import math\nprint(repr(math.fsum([{}])))", sums.join(", ")));
    assert_eq!(m["value_sum"].as_f64().unwrap(), fsum.trim().parse::<f64>().unwrap(), "{fsum}");

    // Asking for the grid's own resolution brings -tap back: the origin moves to the 30 m
    // lattice, which is a resampling, and the refusal names both ways out.
    let out2 = dir.path().join("st2");
    let line = one_error_line(
        &fails(&["convert", s(&src), "--out", s(&out2), "--resolution", "30"]),
        &["needs a method", "--method", "--no-align"],
    );
    assert!(line.contains("as it is"), "{line}");
    let line = one_error_line(&fails(&["convert", s(&src), "--out", s(&out2), "--align"]), &["--method", "--no-align"]);
    assert!(line.contains("LC08_B4.TIF"), "{line}");
    // --align with a method resamples onto the lattice.
    let stdout = ok(&["convert", s(&src), "--out", s(&out2), "--align", "--method", "average", "-q"]);
    assert!(!stdout.contains("as it is"), "{stdout}");
    let g = &manifest(&out2, "lc08_b4")["grid"];
    assert_eq!(g["x0"].as_f64().unwrap(), 500_010.0, "{g}");
    // --align and --no-align together make no sense.
    fails(&["convert", s(&src), "--out", s(&out2), "--align", "--no-align"]);
}

#[test]
fn dem_with_nodata_is_copied_as_it_is() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let (src, out) = (dir.path().join("srtm_38_03.tif"), dir.path().join("st"));
    // SRTM-like: 3 arc-second cells, origin half a cell off the whole degree.
    let res = 1.0 / 1200.0;
    let spec = RasterSpec {
        width: 240,
        height: 180,
        x0: 4.999_583_333_333_334,
        y0: 50.000_416_666_666_67,
        res,
        epsg: 4326,
        nodata: Some(-32768.0),
        block: 64,
    };
    let mut next = lcg(7);
    let values: Vec<i16> = (0..spec.width * spec.height)
        .map(|_| if next() % 11 == 0 { -32768 } else { (next() % 3000) as i16 - 50 })
        .collect();
    write_tif(&src, &spec, values.clone());
    convert_plain(&src, &out, "srtm_38_03", &spec);
    let m = manifest(&out, "srtm_38_03");
    assert_eq!(m["kind"]["raster"]["nodata"].as_f64(), Some(-32768.0), "{m}");
    same_cells(&out, "srtm_38_03", &spec, &values.iter().map(|v| *v as f64).collect::<Vec<_>>(), Some(-32768.0));
}

#[test]
fn dotted_and_odd_file_names_become_names() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let out = dir.path().join("st");
    let spec = RasterSpec { width: 50, height: 40, ..utm_spec() };
    let values: Vec<u8> = (0..spec.width * spec.height).map(|i| (i % 251) as u8).collect();
    for (file, name) in [
        ("RGB.byte.tif", "rgb_byte"),
        ("my raster (v2).tif", "my_raster_v2"),
        ("2019-landcover.tif", "r_2019_landcover"),
    ] {
        let src = dir.path().join(file);
        write_tif(&src, &spec, values.clone());
        let stdout = convert_plain(&src, &out, name, &spec);
        assert!(stdout.contains("--name"), "the summary says how to choose another name: {stdout}");
        same_cells(&out, name, &spec, &values.iter().map(|v| *v as f64).collect::<Vec<_>>(), None);
    }
    // Nothing to make a name from, or a reserved name: the refusal names --name.
    let src = dir.path().join("(-).tif");
    write_tif(&src, &spec, values.clone());
    one_error_line(&fails(&["convert", s(&src), "--out", s(&out)]), &["--name"]);
    let src = dir.path().join("Raster-Datasets.tif");
    write_tif(&src, &spec, values);
    one_error_line(&fails(&["convert", s(&src), "--out", s(&out)]), &["raster_datasets", "--name"]);
}

#[test]
fn categorical_source_summed_gets_a_warning() {
    let dir = tmp();
    let (src, plain) = (dir.path().join("landcover.tif"), dir.path().join("codes.tif"));
    let spec = RasterSpec { width: 64, height: 48, ..RasterSpec::geographic(64, 48, 0.25) };
    let values: Vec<u8> = (0..64 * 48).map(|i| (i % 7) as u8 * 10).collect();
    write_tif(&src, &spec, values.clone());
    write_tif(&plain, &spec, values);
    {
        let ds = gdal::Dataset::open_ex(
            &src,
            gdal::DatasetOptions { open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE, ..Default::default() },
        )
        .unwrap();
        let ct = gdal::raster::ColorTable::color_ramp(
            0,
            &gdal::raster::ColorEntry::rgba(0, 0, 0, 255),
            70,
            &gdal::raster::ColorEntry::rgba(0, 200, 0, 255),
        )
        .unwrap();
        ds.rasterband(1).unwrap().set_color_table(&ct);
    }
    let warned = |src: &Path, method: &str| {
        let out = dir.path().join(format!("st-{method}-{}", src.file_stem().unwrap().to_string_lossy()));
        let o = run(&["convert", s(src), "--out", s(&out), "--resolution", "1", "--method", method]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        err.lines().find(|l| l.contains("categorical")).map(str::to_string)
    };
    for method in ["sum", "average"] {
        let w = warned(&src, method).unwrap_or_else(|| panic!("no warning for --method {method}"));
        assert!(w.contains("landcover") && w.contains("colour table") && w.contains("--method mode"), "{w}");
    }
    assert_eq!(warned(&src, "mode"), None);
    // No colour table, but only 7 distinct codes: categorical all the same.
    for method in ["sum", "average"] {
        let w = warned(&plain, method).unwrap_or_else(|| panic!("no warning for 7 codes with --method {method}"));
        assert!(w.contains("codes") && w.contains("only 7 distinct values") && w.contains("--method mode"), "{w}");
    }
    assert_eq!(warned(&plain, "mode"), None);
}

#[test]
fn few_valued_integer_source_warns_a_dem_does_not() {
    let dir = tmp();
    // Large enough that the sample is windows spread over the raster, not all of it.
    let (w, h) = (1500, 1100);
    let spec = RasterSpec { nodata: Some(-32768.0), ..RasterSpec::geographic(w, h, 0.01) };
    let warned = |src: &Path, method: &str| {
        let out = dir.path().join(format!("st-{method}-{}", src.file_stem().unwrap().to_string_lossy()));
        let o = run(&["convert", s(src), "--out", s(&out), "--resolution", "0.5", "--method", method]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        err.lines().find(|l| l.contains("categorical")).map(str::to_string)
    };
    // Soil classes 1..=12 in Int16 blocks, with nodata: no colour table, no RAT.
    let soil = dir.path().join("soil.tif");
    let mut r = lcg(12);
    let classes: Vec<i16> = (0..w * h)
        .map(|i| if i % 97 == 0 { -32768 } else { 1 + ((i / w / 40 + i % w / 40 + (r() % 2) as usize) % 12) as i16 })
        .collect();
    write_tif(&soil, &spec, classes);
    let msg = warned(&soil, "sum").expect("12 classes with --method sum should warn");
    assert!(msg.contains("soil") && msg.contains("only 12 distinct values") && msg.contains("--method mode"), "{msg}");
    assert!(warned(&soil, "average").is_some());
    // A DEM: elevations from 200 to ~2,900 m, thousands of distinct values.
    let dem = dir.path().join("dem.tif");
    let mut r = lcg(7);
    let heights: Vec<i16> = (0..w * h)
        .map(|i| if i % 101 == 0 { -32768 } else { (200 + (i % w) + (i / w) + (r() % 25) as usize) as i16 })
        .collect();
    write_tif(&dem, &spec, heights);
    assert_eq!(warned(&dem, "sum"), None, "a DEM is no categorical raster");
    assert_eq!(warned(&dem, "average"), None);
}
