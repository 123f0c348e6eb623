//! The command line: bad input gives a clear one-line error, a non-zero exit and commits
//! nothing (one test per case); config strategies and overrides; `inspect`; the JSON Schemas.

use crate::common::*;
use gdal::spatial_ref::SpatialRef;
use gdal::DriverManager;
use std::path::{Path, PathBuf};

/// A small valid Int16 raster on a 0.05 degree grid; returns its path.
fn good_tif(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    let spec = RasterSpec { nodata: Some(-1.0), ..RasterSpec::geographic(120, 80, 0.05) };
    let mut next = lcg(5);
    write_tif(&p, &spec, (0..120 * 80).map(|_| (next() % 9) as i16).collect::<Vec<_>>());
    p
}

/// No `dataset.json` anywhere under `out` (the folder may not even exist).
fn nothing_committed(out: &Path) {
    fn walk(dir: &Path) {
        let Ok(it) = std::fs::read_dir(dir) else { return };
        for e in it {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p);
            } else {
                assert!(p.file_name().unwrap() != "dataset.json", "{} was written by a failed run", p.display());
            }
        }
    }
    walk(out);
}

/// Runs a convert that must fail: one `error:` line mentioning `needles`, nothing committed.
fn bad(args: &[&str], out: &Path, needles: &[&str]) -> String {
    let line = one_error_line(&fails(args), needles);
    nothing_committed(out);
    line
}

#[test]
fn missing_file() {
    let dir = tmp();
    let out = dir.path().join("st");
    let src = dir.path().join("no-such.tif");
    bad(&["convert", s(&src), "--name", "a", "--out", s(&out)], &out, &[s(&src), "no such file"]);
}

#[test]
fn not_a_raster() {
    let dir = tmp();
    let out = dir.path().join("st");
    let src = dir.path().join("notes.tif");
    std::fs::write(&src, "species,count\nlynx,3\n").unwrap();
    let line = bad(&["convert", s(&src), "--name", "a", "--out", s(&out)], &out, &[s(&src), "not a raster"]);
    assert!(!line.contains("NULL pointer"), "GDAL's internals leak into the message: {line}");
}

#[test]
fn band_out_of_range() {
    let dir = tmp();
    let src = good_tif(dir.path(), "one_band.tif");
    let out = dir.path().join("st");
    bad(&["convert", s(&src), "--name", "a", "--out", s(&out), "--band", "2"], &out, &[s(&src), "band 2", "1 band"]);
    bad(&["convert", s(&src), "--name", "a", "--out", s(&out), "--band", "0"], &out, &["band", "from 1"]);
}

#[test]
fn unknown_method() {
    let dir = tmp();
    let src = good_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    bad(
        &["convert", s(&src), "--name", "a", "--out", s(&out), "--resolution", "0.1", "--method", "bicubic"],
        &out,
        &["--method", "\"bicubic\"", "sum, average, mode"],
    );
}

#[test]
fn resolution_not_positive() {
    let dir = tmp();
    let src = good_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    for r in ["0", "-1", "-0.05"] {
        bad(
            &["convert", s(&src), "--name", "a", "--out", s(&out), "--resolution", r, "--method", "sum"],
            &out,
            &["resolution", "positive"],
        );
    }
    bad(
        &["convert", s(&src), "--name", "a", "--out", s(&out), "-tr", "0", "0.1", "--method", "sum"],
        &out,
        &["resolution", "positive"],
    );
}

#[test]
fn rotated_raster() {
    let dir = tmp();
    let src = dir.path().join("rotated.tif");
    {
        let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
        let mut ds = driver.create_with_band_type::<u8, _>(&src, 50, 40, 1).unwrap();
        ds.set_geo_transform(&[10.0, 0.1, 0.02, 50.0, 0.03, -0.1]).unwrap();
        ds.set_spatial_ref(&SpatialRef::from_epsg(4326).unwrap()).unwrap();
    }
    let out = dir.path().join("st");
    bad(&["convert", s(&src), "--name", "a", "--out", s(&out)], &out, &[s(&src), "rotated"]);
}

#[test]
fn unwritable_output_folder() {
    // Tests run as root, which chmod does not stop: put the output under a regular file.
    let dir = tmp();
    let src = good_tif(dir.path(), "a.tif");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let out = file.join("staging");
    bad(&["convert", s(&src), "--name", "a", "--out", s(&out)], &out, &[s(&out), "output folder"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a folder");
}

#[test]
fn unsafe_dataset_names() {
    let dir = tmp();
    let src = good_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    for name in ["Bad Name", "x\"; DROP TABLE t; --", "1abc", "a/b"] {
        bad(&["convert", s(&src), "--name", name, "--out", s(&out)], &out, &["dataset name", "safe SQL identifier"]);
    }
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(), "nothing created for bad names");
    // A Zarr group's own variables cannot also be the dataset's array.
    for name in ["x", "y", "spatial_ref"] {
        let args = ["convert", s(&src), "--name", name, "--out", s(&out), "--format", "zarr"];
        bad(&args, &out, &[&format!("dataset {name}"), "x, y, spatial_ref", "another --name"]);
    }
    // `-` is normalised to `_`.
    ok(&["convert", s(&src), "--name", "am-fungi", "--out", s(&out)]);
    assert_eq!(manifest(&out, "am_fungi")["name"], "am_fungi");
    assert!(!out.join("am-fungi").exists());
}

#[test]
fn config_and_source_together() {
    let dir = tmp();
    let src = good_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    let cfg = dir.path().join("c.yml");
    std::fs::write(&cfg, format!("datasets:\n  - name: a\n    path: {}\noutput:\n  uri: {}\n", s(&src), s(&out)))
        .unwrap();
    bad(&["convert", s(&src), "--config", s(&cfg), "--out", s(&out)], &out, &["--config", "not both"]);
}

/// Writes a config into `dir` and returns its path.
#[test]
fn load_and_verify_without_a_staging_root_say_which_command_has_nothing_to_do() {
    for verb in ["load", "verify"] {
        let line = one_error_line(&fails(&[verb]), &[&format!("nothing to {verb}: give --from ./staging")]);
        assert!(line.contains("--config config.yml"), "{line}");
    }
}

fn config(dir: &Path, file: &str, text: &str) -> PathBuf {
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn config_unknown_key() {
    let dir = tmp();
    let src = good_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    let cfg = config(
        dir.path(),
        "c.yml",
        &format!("datasets:\n  - name: a\n    path: {}\n    colour: red\noutput:\n  uri: {}\n", s(&src), s(&out)),
    );
    bad(&["convert", "--config", s(&cfg)], &out, &[s(&cfg), "colour", "line 4"]);
    let cfg = config(
        dir.path(),
        "d.yml",
        &format!("datasets:\n  - name: a\n    path: {}\noutput:\n  uri: {}\n  compression: zstd\n", s(&src), s(&out)),
    );
    bad(&["convert", "--config", s(&cfg)], &out, &[s(&cfg), "compression", "line 6"]);
}

#[test]
fn config_wrong_type() {
    let dir = tmp();
    let src = good_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    let cfg = config(
        dir.path(),
        "c.yml",
        &format!(
            "datasets:\n  - name: a\n    path: {}\noutput:\n  uri: {}\nresampling:\n  window_size: big\n",
            s(&src),
            s(&out)
        ),
    );
    bad(&["convert", "--config", s(&cfg)], &out, &[s(&cfg), "window_size", "line 7"]);
    let cfg = config(
        dir.path(),
        "d.yml",
        &format!("datasets:\n  - name: a\n    path: {}\n    band: first\noutput:\n  uri: {}\n", s(&src), s(&out)),
    );
    bad(&["convert", "--config", s(&cfg)], &out, &[s(&cfg), "band", "line 4"]);
}

#[test]
fn config_unknown_data_type() {
    let dir = tmp();
    let src = good_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    let cfg = config(
        dir.path(),
        "c.yml",
        &format!(
            "datasets:\n  - name: a\n    path: {}\n    data_type: weird_data\nresampling:\n  target_resolution: 0.1\noutput:\n  uri: {}\n",
            s(&src),
            s(&out)
        ),
    );
    bad(&["convert", "--config", s(&cfg)], &out, &[s(&cfg), "data_type", "weird_data", "strategies"]);
}

#[test]
fn config_missing_files() {
    let dir = tmp();
    let out = dir.path().join("st");
    // The config file itself.
    let cfg = dir.path().join("nowhere.yml");
    bad(&["convert", "--config", s(&cfg), "--out", s(&out)], &out, &[s(&cfg), "cannot read config"]);
    // A raster the config names.
    let src = dir.path().join("gone.tif");
    let cfg = config(
        dir.path(),
        "c.yml",
        &format!("datasets:\n  - name: gone\n    path: {}\noutput:\n  uri: {}\n", s(&src), s(&out)),
    );
    bad(&["convert", "--config", s(&cfg)], &out, &[s(&src), "no such file"]);
}

#[test]
fn config_strategies_and_overrides() {
    if !require(&[Python]) {
        return;
    }
    let dir = tmp();
    let src = good_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    let text = format!(
        "datasets:\n\
         \x20 - name: rich\n    path: {src}\n    data_type: richness_data\n\
         \x20 - name: cont\n    path: {src}\n    data_type: continuous_data\n\
         \x20 - name: cat\n    path: {src}\n    data_type: categorical_data\n\
         \x20 - name: rich-max\n    path: {src}\n    data_type: richness_data\n    method: max\n\
         \x20 - name: legacy\n    path: {src}\n    data_type: continuous_data\n    resampling_method: min\n\
         \x20 - name: skipped\n    path: {src}\n    data_type: richness_data\n    enabled: false\n\
         resampling:\n  target_resolution: 0.1\n  window_size: 32\n\
         output:\n  uri: {out}\n",
        src = s(&src),
        out = s(&out)
    );
    let cfg = config(dir.path(), "config.yml", &text);
    validate_with_schema(&repo_file("schemas/config.schema.json"), &cfg);
    ok(&["convert", "--config", s(&cfg)]);
    for (name, method) in
        [("rich", "sum"), ("cont", "average"), ("cat", "mode"), ("rich_max", "max"), ("legacy", "min")]
    {
        let m = manifest(&out, name);
        assert_eq!(
            (m["kind"]["raster"]["method"].as_str(), m["status"].as_str()),
            (Some(method), Some("complete")),
            "{name}"
        );
        assert_eq!(m["window"], 32);
    }
    assert!(!out.join("skipped").exists(), "a disabled dataset was converted");
    validate_dataset_json(&out, "cat");

    // --method overrides the strategy and the per-dataset method; --dataset picks some.
    let out2 = dir.path().join("st2");
    ok(&["convert", "--config", s(&cfg), "--out", s(&out2), "--method", "nearest", "--dataset", "rich,rich-max"]);
    for name in ["rich", "rich_max"] {
        assert_eq!(manifest(&out2, name)["kind"]["raster"]["method"], "nearest", "{name}");
    }
    assert!(!out2.join("cont").exists() && !out.join("st2").exists());
    // Flags override config values (window).
    let out3 = dir.path().join("st3");
    ok(&["convert", "--config", s(&cfg), "--out", s(&out3), "--dataset", "cat", "--window", "64"]);
    assert_eq!(manifest(&out3, "cat")["window"], 64);
}

#[test]
fn inspect_shows_tiles_done_and_total() {
    let dir = tmp();
    let src = good_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    ok(&["convert", s(&src), "--name", "plants", "--out", s(&out), "--window", "32"]);
    ok(&["convert", s(&src), "--name", "plants_z", "--out", s(&out), "--window", "64", "--format", "zarr"]);
    let text = ok(&["inspect", s(&out)]);
    // 120 x 80 cells: 4 x 3 windows of 32, 2 x 2 of 64.
    let line = text.lines().find(|l| l.starts_with("plants ")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("complete") && line.contains("parquet") && line.contains("12/12"), "{line}");
    let line = text.lines().find(|l| l.starts_with("plants_z ")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("zarr") && line.contains("4/4"), "{line}");
    let json: serde_json::Value = serde_json::from_str(&ok(&["inspect", s(&out), "--json"])).unwrap();
    let p = json.as_array().unwrap().iter().find(|d| d["name"] == "plants").unwrap();
    assert_eq!((p["tiles_done"].as_u64(), p["tiles_total"].as_u64()), (Some(12), Some(12)));
    assert_eq!(p["rows"], manifest(&out, "plants")["row_count"]);
}

#[test]
fn repo_configs_match_the_schema() {
    if !require(&[Python]) {
        return;
    }
    let schema = repo_file("schemas/config.schema.json");
    let mut configs = vec![repo_file("config.yml")];
    if let Ok(it) = std::fs::read_dir(repo_file("examples")) {
        configs
            .extend(it.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml")));
    }
    for c in &configs {
        assert!(c.exists(), "{} is missing", c.display());
        validate_with_schema(&schema, c);
    }
}

/// Whether Python `jsonschema` accepts a YAML text against the config schema.
fn schema_accepts(yaml: &str) -> bool {
    let code = format!(
        "import json, yaml, jsonschema\n\
         s = json.load(open({schema:?}))\n\
         print(jsonschema.Draft202012Validator(s).is_valid(yaml.safe_load({yaml:?})))",
        schema = s(&repo_file("schemas/config.schema.json")),
    );
    match py(&code).as_str() {
        "True" => true,
        "False" => false,
        other => panic!("{other}"),
    }
}

#[test]
fn config_schema_agrees_with_the_parser() {
    if !require(&[Python]) {
        return;
    }
    // Structural cases: every dataset is disabled, so a config the parser accepts ends with
    // "no enabled datasets", and one it rejects ends with the parse error.
    let dir = tmp();
    let d = "datasets:\n  - name: a\n    path: a.tif\n    enabled: false\n";
    let cases: Vec<(String, bool)> = vec![
        (d.to_string(), true),
        (format!("{d}resampling:\n  target_resolution: [0.1, 0.2]\n  target_bounds: [-10, 30, 20, 60]\n"), true),
        (
            format!(
                "{d}    data_type: richness_data\n    band: ~\n    band_name: richness\n    resampling_method: sum\n    nodata: -1\n\
                 resampling:\n  target_resolution: 0.05\n  target_crs: EPSG:4326\n  resolution_tolerance: 1.0e-9\n  \
                 allow_skip_resampling: false\n  align: true\n  strategies:\n    counts: sum\n  window_size: 512\n  threads: 2\n\
                 output:\n  format: zarr\n  uri: s3://bucket/prefix\n  zarr_version: 2\n\
                 database:\n  url: postgres://x@h/db\n  schema: raster\n  table_prefix: rs_\n"
            ),
            true,
        ),
        ("resampling:\n  window_size: 256\n".to_string(), false),
        (format!("{d}colour: red\n"), false),
        (format!("{d}    colour: red\n"), false),
        (format!("{d}resampling:\n  resolution: 0.1\n"), false),
        (format!("{d}output:\n  compression: zstd\n"), false),
        (format!("{d}database:\n  password: x\n"), false),
        (format!("{d}resampling:\n  window_size: big\n"), false),
        (format!("{d}    band: first\n"), false),
        (format!("{d}    enabled: 3\n"), false),
        (format!("{d}resampling:\n  target_bounds: [1, 2, 3]\n"), false),
        (format!("{d}resampling:\n  target_resolution: fine\n"), false),
        (format!("{d}    method: sum\n    resampling_method: sum\n"), false),
        (format!("{d}resampling:\n  strategies: ~\n"), false),
        (format!("{d}resampling: ~\n"), false),
        ("datasets:\n  - path: a.tif\n".to_string(), false),
    ];
    for (i, (text, valid)) in cases.iter().enumerate() {
        let cfg = config(dir.path(), &format!("c{i}.yml"), text);
        let stderr = fails(&["convert", "--config", s(&cfg)]);
        let parsed = stderr.contains("no enabled datasets");
        assert_eq!(
            parsed,
            *valid,
            "case {i}: rasterstage {}:\n{text}\n{stderr}",
            if parsed { "accepts" } else { "rejects" }
        );
        assert_eq!(schema_accepts(text), *valid, "case {i}: the schema disagrees with rasterstage:\n{text}");
    }

    // Values the schema rejects and rasterstage rejects once the dataset is enabled (before
    // any conversion starts).
    let src = good_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    let e = format!("datasets:\n  - name: a\n    path: {}\noutput:\n  uri: {}\n", s(&src), s(&out));
    for (i, (text, needle)) in [
        (format!("{e}  format: csv\n"), "format"),
        (format!("{e}  zarr_version: 4\n"), "zarr_version"),
        (format!("{e}resampling:\n  window_size: 8\n"), "window"),
        (format!("{e}resampling:\n  target_resolution: 0\n"), "resolution"),
        (format!("{e}resampling:\n  target_resolution: 0.1\n  strategies:\n    richness_data: bicubic\n"), "bicubic"),
        (e.replace("    path:", "    method: bicubic\n    path:"), "bicubic"),
        (e.replace("name: a", "name: Bad Name"), "Bad Name"),
        (e.replace("    path:", "    band: 0\n    path:"), "band"),
    ]
    .iter()
    .enumerate()
    {
        let text = if text.contains("richness_data: bicubic") {
            text.replace("    path:", "    data_type: richness_data\n    path:")
        } else {
            text.clone()
        };
        let cfg = config(dir.path(), &format!("v{i}.yml"), &text);
        bad(&["convert", "--config", s(&cfg)], &out, &[needle]);
        assert!(!schema_accepts(&text), "case v{i}: the schema accepts what rasterstage rejects:\n{text}");
    }
}

#[test]
fn inspect_of_a_missing_folder() {
    let dir = tmp();
    let missing = dir.path().join("not-staged-here");
    one_error_line(&fails(&["inspect", s(&missing)]), &[s(&missing), "no such staging folder"]);
    assert!(!missing.exists(), "inspect created the folder it was asked to read");
}

#[test]
fn unknown_target_crs() {
    // GDAL/PROJ print their own "ERROR 1: ..." lines unless rasterstage routes them: the user
    // must still see one line.
    let dir = tmp();
    let src = good_tif(dir.path(), "a.tif");
    let out = dir.path().join("st");
    bad(
        &[
            "convert",
            s(&src),
            "--name",
            "a",
            "--out",
            s(&out),
            "--target-crs",
            "EPSG:99999",
            "--resolution",
            "0.1",
            "--method",
            "sum",
        ],
        &out,
        &["EPSG:99999"],
    );
}
