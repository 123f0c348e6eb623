//! Inputs a demanding user brings that the other tests did not think of: infinities of both
//! signs, signed bytes, complex cells. Each either stages what GDAL reads, or is refused at
//! `convert` with one line saying what to do, never staged for a later step to refuse.

use crate::common::*;
use std::path::{Path, PathBuf};

/// A Float32 raster 32 x 16 at 1 degree, all ones but for `cells` (row, col, value).
fn float_raster(dir: &Path, name: &str, cells: &[(usize, usize, f32)]) -> PathBuf {
    let (w, h) = (32, 16);
    let mut v = vec![1.0f32; w * h];
    for &(r, c, x) in cells {
        v[r * w + c] = x;
    }
    let path = dir.join(format!("{name}.tif"));
    write_tif(&path, &RasterSpec { block: 16, ..RasterSpec::geographic(w, h, 1.0) }, v);
    path
}

/// +inf and -inf among the valid cells sum to NaN, which every reader refuses as damage:
/// `convert` refuses them itself, in one tile or across two, naming the fix, and leaves no
/// complete dataset.json; with one of them made nodata the dataset stages, inspects, loads and
/// verifies, infinity included.
#[test]
fn infinities_of_both_signs_are_refused_at_convert_not_by_load() {
    let dir = tmp();
    let root = dir.path().join("st");
    let src = float_raster(dir.path(), "inf", &[(0, 0, f32::INFINITY), (0, 20, f32::NEG_INFINITY)]);
    for (window, format, what) in [
        ("32", "parquet", "tile r0_c0: its values sum to NaN"),
        ("16", "parquet", "the tiles' value sums add up to NaN"),
        ("16", "zarr", "the tiles' value sums add up to NaN"),
    ] {
        let args = ["-q", "convert", s(&src), "--out", s(&root), "--window", window, "--format", format, "--overwrite"];
        let err = fails(&args);
        let line = err.lines().rfind(|l| l.starts_with("error:")).unwrap();
        for needle in ["inf: ", what, "+inf and -inf", "--nodata=-inf"] {
            assert!(line.contains(needle), "{needle:?} not in {line}");
        }
        assert_ne!(manifest(&root, "inf")["status"], "complete", "{window} {format}");
        // The half-done dataset does not stop inspect from showing the root.
        assert!(ok(&["inspect", s(&root)]).contains("converting"));
    }
    let args = ["-q", "convert", s(&src), "--out", s(&root), "--window", "16", "--nodata=-inf", "--overwrite"];
    assert!(ok(&args).contains("511 rows, sum inf"), "{}", ok(&args));
    let listing = ok(&["inspect", s(&root)]);
    assert!(listing.lines().any(|l| l.starts_with("inf ") && l.trim_end().ends_with(" inf")), "{listing}");
    if !require(&[Need::Pg]) {
        return;
    }
    let sc = Schema::new("inf");
    ok(&["-q", "load", "--from", s(&root), "--schema", &sc.name, "--database-url", &db_url()]);
    ok(&["-q", "verify", "--from", s(&root), "--schema", &sc.name, "--database-url", &db_url()]);
    let top: f32 = client()
        .query_one(&format!("SELECT value FROM {} WHERE row_idx = 0 AND col_idx = 0", sc.q("inf")), &[])
        .unwrap()
        .get(0);
    assert_eq!(top, f32::INFINITY);
    assert_eq!(sc.one_i64(&format!("SELECT count(*) FROM {}", sc.q("inf"))), 511);
}

/// A signed byte band (GDAL 3.6's Int8: Byte marked `PIXELTYPE=SIGNEDBYTE`, which Python's
/// GDAL reads as -3 where a Byte read gives 253) and complex bands are refused with one line
/// that names the real type, not staged as unsigned bytes or called "Unknown".
#[test]
fn signed_byte_and_complex_bands_are_refused_by_their_type_name() {
    let dir = tmp();
    let byte = dir.path().join("b.tif");
    write_tif(&byte, &RasterSpec { block: 16, ..RasterSpec::geographic(32, 16, 1.0) }, vec![253u8; 32 * 16]);
    for (ot, extra, name) in [
        (
            "Byte",
            &["-co", "PIXELTYPE=SIGNEDBYTE"][..],
            "Int8 (Byte with PIXELTYPE=SIGNEDBYTE; rewrite it as Int16 first)",
        ),
        ("CInt16", &[][..], "CInt16"),
        ("CFloat32", &[][..], "CFloat32"),
    ] {
        let out = dir.path().join(format!("{ot}{}.tif", extra.len()));
        let st = std::process::Command::new("gdal_translate")
            .args(["-q", "-ot", ot])
            .args(extra)
            .args([s(&byte), s(&out)])
            .status()
            .unwrap();
        assert!(st.success());
        let err = fails(&["-q", "convert", s(&out), "--out", s(&dir.path().join("st"))]);
        one_error_line(&err, &[s(&out), &format!("cell type {name} is not supported")]);
    }
    // A plain Byte band still converts, 253 as 253.
    let root = dir.path().join("st");
    ok(&["-q", "convert", s(&byte), "--out", s(&root)]);
    assert_eq!(manifest(&root, "b")["value_sum"], 253.0 * 512.0);
}

/// A staged tile deleted or truncated by hand: every reader names it and says to convert
/// again with --overwrite, since a plain rerun of a complete dataset writes nothing (it was
/// told to "run convert again", which left the damage as it was); following the advice
/// repairs it.
#[test]
fn a_damaged_tile_names_the_rerun_that_repairs_it() {
    let dir = tmp();
    let root = dir.path().join("st");
    let src = float_raster(dir.path(), "dmg", &[]);
    let convert = ["-q", "convert", s(&src), "--out", s(&root), "--window", "16"];
    ok(&convert);
    let png = dir.path().join("p.png");
    let ds = root.join("dmg");
    let preview = ["-q", "preview", s(&ds), "--out", s(&png)];
    for (tile, damage) in [("r0_c0", "delete"), ("r0_c16", "truncate")] {
        let path = root.join("dmg/tiles").join(format!("{tile}.parquet"));
        match damage {
            "delete" => std::fs::remove_file(&path).unwrap(),
            _ => std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(100).unwrap(),
        }
        one_error_line(&fails(&preview), &[tile, "run convert again with --overwrite"]);
        // What the line used to say does not help: the dataset is complete, nothing is redone.
        assert!(ok(&convert).contains("(0 written now)"));
        fails(&preview);
        let mut again = convert.to_vec();
        again.push("--overwrite");
        ok(&again);
        ok(&preview);
    }
}

/// A GDAL subdataset (`NETCDF:"f.nc":var`) is fingerprinted by the file inside it: before,
/// its size and mtime were recorded as 0, so a rewritten NetCDF file was never noticed and a
/// rerun kept the old tiles. A missing subdataset file is one line saying so (not "no driver
/// recognises its format" after HDF5's error stack).
#[test]
fn a_subdataset_is_fingerprinted_by_its_file_and_a_missing_one_is_one_line() {
    let dir = tmp();
    let root = dir.path().join("st");
    let nc = dir.path().join("f.nc");
    let to_nc = |src: &Path| {
        let st = std::process::Command::new("gdal_translate")
            .args(["-q", "-of", "netCDF", s(src), s(&nc)])
            .status()
            .unwrap();
        assert!(st.success());
    };
    to_nc(&float_raster(dir.path(), "a", &[]));
    let sub = format!("NETCDF:\"{}\":Band1", s(&nc));
    let convert = ["-q", "convert", &sub, "--out", s(&root)];
    assert!(ok(&convert).contains("512 rows, sum 512"));
    let fp = &manifest(&root, "band1")["kind"]["raster"]["source"]["fingerprint"];
    assert_eq!(fp["size"], std::fs::metadata(&nc).unwrap().len());
    // The same file rewritten with other values: the rerun says so instead of keeping the tiles.
    std::thread::sleep(std::time::Duration::from_millis(20));
    to_nc(&float_raster(dir.path(), "b", &[(0, 0, 5.0)]));
    one_error_line(&fails(&convert), &["was converted from an earlier version of", &sub, "--overwrite"]);
    let mut again = convert.to_vec();
    again.push("--overwrite");
    assert!(ok(&again).contains("512 rows, sum 516"));
    for gone in [format!("NETCDF:\"{}\":Band1", s(&dir.path().join("gone.nc"))), "HDF5:\"gone.h5\"://a".to_string()] {
        one_error_line(&fails(&["-q", "convert", &gone, "--out", s(&root)]), &[&gone, "no such file"]);
    }
}

/// A VRT whose source file is gone fails its tile with GDAL's own message, not the gdal
/// crate's framing ("CPL error class: '3', error number: '4', error msg: '...'").
#[test]
fn a_vrt_with_a_missing_source_names_the_file_in_gdals_words() {
    let dir = tmp();
    let src = float_raster(dir.path(), "gone", &[]);
    let vrt = dir.path().join("v.vrt");
    let st = std::process::Command::new("gdalbuildvrt").args(["-q", s(&vrt), s(&src)]).status().unwrap();
    assert!(st.success());
    std::fs::remove_file(&src).unwrap();
    let err = fails(&["-q", "convert", s(&vrt), "--out", s(&dir.path().join("st"))]);
    let line = err.lines().rfind(|l| l.starts_with("error:")).unwrap();
    assert!(line.contains("gone.tif: No such file or directory"), "{line}");
    assert!(!line.contains("CPL error") && !line.contains("error msg"), "{line}");
}

/// A mask band (here an internal per-dataset mask over the top rows): GDAL's warper leaves the
/// masked cells out, passthrough and rasterstage's own kernels read values and nodata only
/// and stage them, so those conversions say so; a conversion through the warper does not.
#[test]
fn a_mask_band_that_the_own_kernels_ignore_is_warned_about() {
    let dir = tmp();
    let src = dir.path().join("m.tif");
    write_tif(&src, &RasterSpec { block: 16, ..RasterSpec::geographic(32, 16, 1.0) }, vec![7i16; 32 * 16]);
    {
        let ds = gdal::Dataset::open_ex(
            &src,
            gdal::DatasetOptions { open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE, ..Default::default() },
        )
        .unwrap();
        let mut band = ds.rasterband(1).unwrap();
        band.create_mask_band(true).unwrap();
        let mut mask = band.open_mask_band().unwrap();
        let mut m: Vec<u8> = vec![255; 32 * 16];
        m[..32 * 4].fill(0);
        mask.write((0, 0), (32, 16), &mut gdal::raster::Buffer::new((32, 16), m)).unwrap();
    }
    let root = dir.path().join("st");
    for (extra, warned) in [
        (&[][..], Some("passthrough")),
        (&["--resolution", "2", "--method", "max"][..], Some("--method max")),
        (&["--resolution", "2", "--method", "med"][..], None),
    ] {
        let mut args = vec!["-q", "convert", s(&src), "--out", s(&root), "--overwrite"];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert!(out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        match warned {
            Some(what) => {
                assert!(err.contains(&format!("m.tif has a mask band, which {what} does not read")), "{args:?}: {err}")
            }
            None => assert!(!err.contains("mask band"), "{args:?}: {err}"),
        }
    }
}
