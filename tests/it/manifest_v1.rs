//! Staged data written before the typed manifest (`format_version` 1, the flat layout every
//! earlier release wrote) still inspects, previews, loads, verifies and merges, and a rerun
//! of `convert` takes it as its own: complete stays complete (same settings digest), and a
//! converting one resumes from its version-1 commit records.
//!
//! The version-1 files are made here from what this version writes, field by field as the
//! earlier writer laid them out (no staged binaries in the repository).

use crate::common::*;
use crate::load::{float_raster, rs_ok, stage};
use serde_json::{json, Map, Value};
use std::path::Path;

/// A version-2 tile record as version 1 wrote it: the window's four fields in the record.
fn record_v1(t: &Value) -> Value {
    let w = &t["window"];
    json!({"id": t["id"], "row0": w["row0"], "col0": w["col0"], "rows": w["rows"], "cols": w["cols"],
        "path": t["path"], "row_count": t["row_count"], "value_sum": t["value_sum"], "checksum": t["checksum"],
        "bytes": t["bytes"]})
}

/// A version-2 `dataset.json` as version 1 wrote the same dataset: the kind's fields at the
/// top (a merge as a raster whose source path names the inputs, method `merge`, Float64),
/// the format as a name with `zarr_version` (and `zarr_shard`, `geoparquet`,
/// `parquet_compat` when set) beside it, and flat tile records.
fn to_v1(m: &Value) -> Value {
    let mut o = Map::new();
    let mut put = |k: &str, v: Value| {
        o.insert(k.to_string(), v);
    };
    put("format_version", json!(1));
    for k in ["name", "status", "created_by"] {
        put(k, m[k].clone());
    }
    let (source, method, dtype, nodata, columns) = match (m["kind"].get("raster"), m["kind"].get("merge")) {
        (Some(r), None) => (r["source"].clone(), r["method"].clone(), r["dtype"].clone(), r["nodata"].clone(), None),
        (None, Some(g)) => {
            let names: Vec<&str> =
                g["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
            let path = format!(
                "merge ({}) of {} from {}",
                g["how"].as_str().unwrap(),
                names.join(", "),
                g["from"].as_str().unwrap()
            );
            let source = json!({"path": path, "band": 1, "dtype": "Float64", "nodata": null, "grid": m["grid"],
                "fingerprint": {"size": 0, "mtime": 0, "mtime_ns": 0}});
            (source, json!("merge"), json!("Float64"), Value::Null, Some(g["columns"].clone()))
        }
        _ => panic!("kind: {}", m["kind"]),
    };
    put("source", source);
    for k in ["grid", "lattice_offset", "bounds"] {
        put(k, m[k].clone());
    }
    put("method", method);
    put("dtype", dtype);
    put("nodata", nodata);
    put("window", m["window"].clone());
    match (m["format"].get("parquet"), m["format"].get("zarr")) {
        (Some(p), None) => {
            put("format", json!("parquet"));
            put("zarr_version", Value::Null);
            if let Some(g) = p.get("geoparquet") {
                put("geoparquet", g.clone());
            }
            if p.get("compat").is_some() {
                put("parquet_compat", json!(true));
            }
        }
        (None, Some(z)) => {
            put("format", json!("zarr"));
            put("zarr_version", z["version"].clone());
            if let Some(k) = z.get("shard") {
                put("zarr_shard", k.clone());
            }
        }
        _ => panic!("format: {}", m["format"]),
    }
    for k in ["settings_hash", "tile_count", "row_count", "value_sum"] {
        put(k, m[k].clone());
    }
    put("tiles", Value::Array(m["tiles"].as_array().unwrap().iter().map(record_v1).collect()));
    if let Some(c) = columns {
        put("columns", c);
    }
    Value::Object(o)
}

/// Rewrites dataset `name` under `root` as version 1 wrote it: its dataset.json and every
/// commit record.
fn downgrade(root: &Path, name: &str) {
    let ds = root.join(name);
    let v1 = to_v1(&manifest(root, name));
    std::fs::write(ds.join("dataset.json"), serde_json::to_vec_pretty(&v1).unwrap()).unwrap();
    for e in std::fs::read_dir(ds.join("_tiles")).unwrap() {
        let p = e.unwrap().path();
        let rec: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        std::fs::write(&p, serde_json::to_vec(&record_v1(&rec)).unwrap()).unwrap();
    }
    assert_eq!(manifest(root, name)["format_version"], 1);
}

#[test]
fn version_1_datasets_inspect_preview_load_verify_merge_and_resume() {
    if !require(&[Pg, Python]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 15);
    let root = dir.path().join("st");
    stage(&src, "a", &root, &[]);
    stage(&src, "b", &root, &["--format", "zarr", "--zarr-version", "2"]);
    // Sharded Zarr and GeoParquet: the fields version 1 kept beside the format.
    stage(&src, "c", &root, &["--format", "zarr", "--zarr-shard", "2"]);
    stage(&src, "d", &root, &["--geoparquet", "--parquet-compat"]);
    let a2 = manifest(&root, "a");
    for n in ["a", "b", "c", "d"] {
        assert_eq!(manifest(&root, n)["format_version"], 2);
        downgrade(&root, n);
    }
    let (c1, d1) = (manifest(&root, "c"), manifest(&root, "d"));
    assert_eq!((c1["zarr_version"].as_u64(), c1["zarr_shard"].as_u64()), (Some(3), Some(2)));
    assert_eq!((d1["geoparquet"].as_str(), d1["parquet_compat"].as_bool()), (Some("wkb"), Some(true)));
    let a1 = std::fs::read(root.join("a/dataset.json")).unwrap();

    // inspect and preview read them as before.
    let shown = ok(&["inspect", s(&root)]);
    for n in ["a", "b", "c", "d"] {
        assert!(
            shown.lines().any(|l| l.starts_with(n) && l.contains("complete") && l.contains("passthrough")),
            "{shown}"
        );
    }
    let png = dir.path().join("a.png");
    ok(&["preview", s(&root.join("a")), "--out", s(&png), "--width", "60"]);
    assert!(std::fs::metadata(&png).unwrap().len() > 0);

    // load and verify, Parquet, Zarr v2, sharded Zarr v3, GeoParquet: the tables hold what
    // the manifests say.
    let sc = Schema::new("v1");
    for n in ["a", "b", "c", "d"] {
        rs_ok(&["load", "--from", s(&root), "--dataset", n, "--schema", &sc.name]);
        let v = rs_ok(&["verify", "--from", s(&root), "--dataset", n, "--schema", &sc.name]);
        assert!(v.contains("tiles match"), "{v}");
        assert_eq!(sc.one_i64(&format!("SELECT count(*) FROM {}", sc.q(n))), a2["row_count"].as_i64().unwrap());
    }
    let cat: (String, String, bool) = {
        let r = client()
            .query_one(
                &format!("SELECT source, method, passthrough FROM {} WHERE name = 'a'", sc.q("raster_datasets")),
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    let path = a2["kind"]["raster"]["source"]["path"].as_str().unwrap().to_string();
    assert_eq!(cat, (path, "passthrough".to_string(), true));

    // merge reads version-1 inputs; its output (version 2), made version 1 in turn, loads too.
    let out = dir.path().join("m");
    ok(&["merge", "--from", s(&root), "--datasets", "a,b", "--out", s(&out.join("ab")), "--how", "inner", "-q"]);
    let ab2 = manifest(&out, "ab");
    assert_eq!(ab2["kind"]["merge"]["how"], "inner");
    downgrade(&out, "ab");
    let shown = ok(&["inspect", s(&out)]);
    assert!(shown.lines().any(|l| l.starts_with("ab") && l.contains("complete") && l.contains("merge")), "{shown}");
    rs_ok(&["load", "--from", s(&out), "--dataset", "ab", "--schema", &sc.name]);
    let v = rs_ok(&["verify", "--from", s(&out), "--dataset", "ab", "--schema", &sc.name]);
    assert!(v.contains("tiles match"), "{v}");
    let source: String = client()
        .query_one(&format!("SELECT source FROM {} WHERE name = 'ab'", sc.q("raster_datasets")), &[])
        .unwrap()
        .get(0);
    assert_eq!(source, format!("merge (inner) of a, b from {}", ab2["kind"]["merge"]["from"].as_str().unwrap()));

    // A rerun with the same settings finds the version-1 dataset complete: nothing is redone
    // or rewritten (the settings digest did not change with the layout).
    let again = ok(&["convert", s(&src), "--name", "a", "--out", s(&root), "--window", "32"]);
    assert!(again.contains("(0 written now)"), "{again}");
    assert_eq!(std::fs::read(root.join("a/dataset.json")).unwrap(), a1, "left as it was");

    // A version-1 dataset left converting resumes from its version-1 commit records.
    let mut m = to_v1(&a2);
    m["status"] = json!("converting");
    m["tiles"] = json!([]);
    m["row_count"] = json!(0);
    m["value_sum"] = json!(0.0);
    std::fs::write(root.join("a/dataset.json"), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let resumed = ok(&["convert", s(&src), "--name", "a", "--out", s(&root), "--window", "32"]);
    assert!(resumed.contains("(0 written now)"), "{resumed}");
    let done = manifest(&root, "a");
    assert_eq!(done["format_version"], 2, "written again as this version writes");
    for k in ["status", "tiles", "row_count", "value_sum", "settings_hash"] {
        assert_eq!(done[k], a2[k], "{k}");
    }
    validate_dataset_json(&root, "a");
}
