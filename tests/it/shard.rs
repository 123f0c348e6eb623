//! Scale-out: `--shard K/N` processes running at the same time against the S3 test server
//! (moto) and PostgreSQL end exactly like one process: same objects byte for byte
//! (tiles, commit records, dataset.json), same rows, ledger and primary key. A shard killed
//! mid-run and rerun, or a rerun with another N, ends the same.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};

/// The shard tests' query on their schema.
pub(crate) trait ShardSchema {
    /// Everything loaded, as text: each table's rows (values as f64 bits), whether it has a
    /// primary key, the ledger and raster_datasets (without times and staging URIs).
    fn snapshot(&self, tables: &[&str]) -> Vec<String>;
}

impl ShardSchema for Schema {
    fn snapshot(&self, tables: &[&str]) -> Vec<String> {
        let mut c = client();
        let mut out = Vec::new();
        for t in tables {
            let sql =
                format!("SELECT row_idx, col_idx, x, y, value::float8 FROM \"{}\".\"{t}\" ORDER BY 1, 2", self.name);
            for r in c.query(&sql, &[]).unwrap() {
                let (x, y, v): (f64, f64, f64) = (r.get(2), r.get(3), r.get(4));
                let (ri, ci): (i32, i32) = (r.get(0), r.get(1));
                out.push(format!("{t} {ri} {ci} {} {} {}", x.to_bits(), y.to_bits(), v.to_bits()));
            }
            let pk: bool = c
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = to_regclass($1) AND indisprimary)",
                    &[&format!("\"{}\".\"{t}\"", self.name)],
                )
                .unwrap()
                .get(0);
            out.push(format!("{t} primary key {pk}"));
        }
        let sql = format!(
            "SELECT dataset, tile_id, row0, col0, nrows, ncols, checksum, rows, value_sum FROM \"{}\".raster_tile_loads ORDER BY 1, 2",
            self.name
        );
        for r in c.query(&sql, &[]).unwrap() {
            let v: f64 = r.get(8);
            out.push(format!(
                "ledger {} {} {} {} {} {} {} {} {}",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, i32>(2),
                r.get::<_, i32>(3),
                r.get::<_, i32>(4),
                r.get::<_, i32>(5),
                r.get::<_, String>(6),
                r.get::<_, i64>(7),
                v.to_bits()
            ));
        }
        let sql = format!(
            "SELECT name, table_name, tile_count, row_count, value_sum FROM \"{}\".raster_datasets ORDER BY 1",
            self.name
        );
        for r in c.query(&sql, &[]).unwrap() {
            let v: f64 = r.get(4);
            out.push(format!(
                "dataset {} {} {} {} {}",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, i32>(2),
                r.get::<_, i64>(3),
                v.to_bits()
            ));
        }
        out
    }
}

pub(crate) const DATASETS: [&str; 3] = ["richness", "cover", "temp"];

/// Three sources of different sizes: two resampled (sum, mode) and one copied (passthrough),
/// with nodata holes, all onto one 0.02-degree lattice in 32-cell windows.
pub(crate) fn sources(dir: &Path) {
    for (name, w, h, seed) in [("richness", 300, 200, 1), ("cover", 160, 240, 2), ("temp", 120, 90, 3)] {
        let mut next = lcg(seed);
        let res = if name == "temp" { 0.02 } else { 0.01 };
        let values: Vec<f32> =
            (0..w * h).map(|_| if next() % 13 == 0 { -9999.0 } else { (next() % 1000) as f32 }).collect();
        let spec = RasterSpec { x0: -10.0, y0: 60.0, nodata: Some(-9999.0), ..RasterSpec::geographic(w, h, res) };
        write_tif(&dir.join(format!("{name}.tif")), &spec, values);
    }
}

/// A config converting the three sources into `out`.
pub(crate) fn config(dir: &Path, file: &str, out: &str) -> String {
    let d = |n: &str| dir.join(format!("{n}.tif")).to_string_lossy().to_string();
    let text = format!(
        "datasets:\n\
         \x20 - {{name: richness, path: {}, data_type: richness_data}}\n\
         \x20 - {{name: cover, path: {}, data_type: categorical_data}}\n\
         \x20 - {{name: temp, path: {}, data_type: continuous_data}}\n\
         resampling:\n  target_resolution: 0.02\n  window_size: 32\n\
         output:\n  uri: {out}\n",
        d("richness"),
        d("cover"),
        d("temp")
    );
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().to_string()
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut c = bin();
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// How many of `keys` (commit records) exist under `prefix` of the bucket.
fn committed(bucket: &Bucket, prefix: &str, keys: &[String]) -> usize {
    let have = bucket.store(prefix).list("").unwrap();
    keys.iter().filter(|k| have.contains(k)).count()
}

/// Runs `args + --shard k/n` for every k at the same time; asserts each succeeds.
fn all_shards(args: &[&str], n: usize) {
    let children: Vec<(usize, Child)> = (0..n)
        .map(|k| {
            let shard = format!("{k}/{n}");
            let mut a = args.to_vec();
            a.extend(["--shard", shard.as_str()]);
            (k, spawn(&a, &[]))
        })
        .collect();
    for (k, c) in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "shard {k}/{n} of {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The reference: one process converts into `single/` and loads into its own schema.
fn reference(dir: &Path, bucket: &Bucket) -> (BTreeMap<String, Vec<u8>>, Vec<String>, Schema) {
    let cfg = config(dir, "single.yml", &bucket.url("single"));
    ok(&["-q", "convert", "--config", &cfg]);
    let sc = Schema::new("ref");
    ok(&["-q", "load", "--config", &cfg, "--schema", &sc.name, "--database-url", &db_url()]);
    let snap = sc.snapshot(&DATASETS);
    (bucket.objects("single"), snap, sc)
}

fn assert_same_objects(got: &BTreeMap<String, Vec<u8>>, want: &BTreeMap<String, Vec<u8>>) {
    let keys = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(got), keys(want), "same objects");
    for (k, v) in want {
        assert!(got[k] == *v, "{k} differs from the single-process run");
    }
    for d in DATASETS {
        let m: serde_json::Value = serde_json::from_slice(&got[&format!("{d}/dataset.json")]).unwrap();
        assert_eq!(m["status"], "complete", "{d}");
    }
}

#[test]
fn four_shards_at_once_equal_one_process() {
    if !require(&[Pg, S3, Python]) {
        return;
    }
    let dir = tmp();
    sources(dir.path());
    let bucket = Bucket::new("shard4");
    let (want_objects, want_rows, _ref_schema) = reference(dir.path(), &bucket);
    assert!(want_objects.keys().filter(|k| k.ends_with(".parquet")).count() > 40, "enough tiles to share");

    let cfg = config(dir.path(), "sharded.yml", &bucket.url("sharded"));
    let plan = ok(&["plan", "--config", &cfg, "--shards", "4", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let per: Vec<u64> = plan["per_shard"].as_array().unwrap().iter().map(|s| s["tiles"].as_u64().unwrap()).collect();
    assert_eq!(per.len(), 4);
    assert!(per.iter().all(|&t| t > 0), "every shard has work: {per:?}");

    all_shards(&["-q", "convert", "--config", &cfg], 4);
    assert_same_objects(&bucket.objects("sharded"), &want_objects);

    let sc = Schema::new("four");
    all_shards(&["-q", "load", "--config", &cfg, "--schema", &sc.name, "--database-url", &db_url()], 4);
    assert_eq!(sc.snapshot(&DATASETS), want_rows, "tables, primary keys, ledger and raster_datasets");
    ok(&["verify", "--config", &cfg, "--schema", &sc.name, "--database-url", &db_url()]);

    // A rerun with another N finds everything done and changes nothing.
    all_shards(&["-q", "convert", "--config", &cfg], 3);
    all_shards(&["-q", "load", "--config", &cfg, "--schema", &sc.name, "--database-url", &db_url()], 2);
    assert_same_objects(&bucket.objects("sharded"), &want_objects);
    assert_eq!(sc.snapshot(&DATASETS), want_rows);
}

#[test]
fn killed_shard_rerun_or_other_n_ends_identical() {
    if !require(&[Pg, S3, Python]) {
        return;
    }
    let dir = tmp();
    sources(dir.path());
    let bucket = Bucket::new("shardkill");
    let (want_objects, want_rows, _ref_schema) = reference(dir.path(), &bucket);
    let cfg = config(dir.path(), "sharded.yml", &bucket.url("sharded"));

    // Shards 0, 1, 3 of 4 run through; shard 2 runs next to them, slowed down (11 tiles x
    // 400 ms), and is killed once it has committed a tile of its own: mid-run, seen in S3.
    let plan: serde_json::Value =
        serde_json::from_str(&ok(&["plan", "--config", &cfg, "--shards", "4", "--json"])).unwrap();
    let mine: Vec<String> = plan["assignment"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["shard"] == 2)
        .map(|t| format!("{}/_tiles/{}.json", t["dataset"].as_str().unwrap(), t["tile"].as_str().unwrap()))
        .collect();
    assert!(mine.len() > 1, "shard 2 has tiles to be killed among: {mine:?}");
    let mut slow = spawn(
        &["-q", "convert", "--config", &cfg, "--shards", "4", "-j", "1"],
        &[("JOB_COMPLETION_INDEX", "2"), ("RASTERSTAGE_TEST_TILE_DELAY_MS", "400")],
    );
    let others: Vec<(usize, Child)> =
        [0, 1, 3].map(|k| (k, spawn(&["-q", "convert", "--config", &cfg, "--shard", &format!("{k}/4")], &[]))).into();
    wait_until("a committed tile of shard 2/4", &mut slow, || committed(&bucket, "sharded", &mine) > 0);
    slow.kill().unwrap();
    slow.wait().unwrap();
    for (k, c) in others {
        succeeded(&["convert", "--shard", &format!("{k}/4")], c.wait_with_output().unwrap());
    }
    let partial = bucket.objects("sharded");
    let incomplete = DATASETS.iter().any(|d| {
        let m: serde_json::Value = serde_json::from_slice(&partial[&format!("{d}/dataset.json")]).unwrap();
        m["status"] == "converting"
    });
    assert!(incomplete, "the killed shard left a dataset incomplete");
    let err = fails(&["finalize", "--config", &cfg]);
    assert!(err.contains("not complete"), "{err}");
    // Load refuses to split an incomplete staging (the split would differ between shards).
    let sc = Schema::new("kill");
    let err = fails(&["load", "--config", &cfg, "--schema", &sc.name, "--database-url", &db_url(), "--shard", "0/2"]);
    assert!(err.contains("not complete"), "{err}");

    // Rerun of the killed shard: done, identical.
    ok(&["-q", "convert", "--config", &cfg, "--shard", "2/4"]);
    assert_same_objects(&bucket.objects("sharded"), &want_objects);
    ok(&["finalize", "--config", &cfg]);
    assert_same_objects(&bucket.objects("sharded"), &want_objects);

    // Load: three of four shards, then the whole with another N.
    for k in [0, 1, 3] {
        ok(&[
            "-q",
            "load",
            "--config",
            &cfg,
            "--schema",
            &sc.name,
            "--database-url",
            &db_url(),
            "--shard",
            &format!("{k}/4"),
        ]);
    }
    assert!(sc.snapshot(&DATASETS).iter().any(|l| l.ends_with("primary key false")), "no key before the last tile");
    all_shards(&["-q", "load", "--config", &cfg, "--schema", &sc.name, "--database-url", &db_url()], 3);
    assert_eq!(sc.snapshot(&DATASETS), want_rows);
}

#[test]
fn killed_shard_finished_by_other_n() {
    if !require(&[Pg, S3, Python]) {
        return;
    }
    let dir = tmp();
    sources(dir.path());
    let bucket = Bucket::new("shardn");
    let (want_objects, _, _ref_schema) = reference(dir.path(), &bucket);
    let cfg = config(dir.path(), "sharded.yml", &bucket.url("sharded"));
    let mut slow = spawn(
        &["-q", "convert", "--config", &cfg, "--shards", "2", "-j", "1"],
        &[("AWS_BATCH_JOB_ARRAY_INDEX", "1"), ("RASTERSTAGE_TEST_TILE_DELAY_MS", "150")],
    );
    // Killed once it has committed a tile (it runs alone: every commit record is its own).
    wait_until("a committed tile of shard 1/2", &mut slow, || {
        bucket.store("sharded").list("").unwrap().iter().any(|k| k.contains("/_tiles/"))
    });
    slow.kill().unwrap();
    slow.wait().unwrap();
    all_shards(&["-q", "convert", "--config", &cfg], 3);
    assert_same_objects(&bucket.objects("sharded"), &want_objects);
}

#[test]
fn merge_shards_equal_one_process() {
    if !require(&[S3, Python]) {
        return;
    }
    let dir = tmp();
    sources(dir.path());
    let bucket = Bucket::new("shardmerge");
    let cfg = config(dir.path(), "single.yml", &bucket.url("single"));
    ok(&["-q", "convert", "--config", &cfg]);
    let from = bucket.url("single");
    let inputs = DATASETS.join(",");
    for format in ["parquet", "zarr"] {
        let (single, sharded) = (format!("mref-{format}"), format!("mshard-{format}"));
        let merge = ["-q", "merge", "--from", &from, "--datasets", &inputs, "--format", format];
        let out = bucket.url(&format!("{single}/merged"));
        ok(&[&merge[..], &["--out", &out]].concat());
        let out = bucket.url(&format!("{sharded}/merged"));
        all_shards(&[&merge[..], &["--out", &out]].concat(), 3);
        let (want, got) = (bucket.objects(&single), bucket.objects(&sharded));
        // The last shard writes the Zarr metadata with the complete dataset.json.
        let tile = if format == "zarr" { "merged.zarr/" } else { ".parquet" };
        assert!(want.keys().filter(|k| k.contains(tile)).count() > 10, "{format}");
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{format}");
        for (k, v) in &want {
            assert!(got[k] == *v, "{format}: {k} differs from the single-process merge");
        }
    }
    let err = fails(&["merge", "--from", &from, "--datasets", &inputs, "--shard", "0/2", "--to-postgres"]);
    assert!(err.contains("--to-postgres"), "{err}");
}

/// Every file under a local folder: relative path -> bytes (without temporary files).
fn local_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(root).into_iter().filter(|(rel, _)| !rel.contains('#')).collect()
}

#[test]
fn local_parquet_and_zarr_shards_equal_one_process() {
    let dir = tmp();
    sources(dir.path());
    for format in ["parquet", "zarr"] {
        let single = dir.path().join(format!("single-{format}"));
        let sharded = dir.path().join(format!("sharded-{format}"));
        let cfg = config(dir.path(), &format!("{format}.yml"), s(&single));
        ok(&["-q", "convert", "--config", &cfg, "--format", format]);
        all_shards(&["-q", "convert", "--config", &cfg, "--format", format, "--out", s(&sharded)], 3);
        let (want, got) = (local_files(&single), local_files(&sharded));
        assert!(want.len() > 40, "{format}: {} files", want.len());
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{format}");
        for (k, v) in &want {
            assert!(got[k] == *v, "{format}: {k} differs from the single-process run");
        }
    }
}

#[test]
fn shard_flags_are_checked_and_plan_is_balanced() {
    let dir = tmp();
    sources(dir.path());
    let out = dir.path().join("out");
    let cfg = config(dir.path(), "c.yml", s(&out));
    let e = fails(&["convert", "--config", &cfg, "--shard", "4/4"]);
    assert!(e.contains("0 <= K < N"), "{e}");
    let e = run_env(&["convert", "--config", &cfg, "--shards", "3"], &[("JOB_COMPLETION_INDEX", "")]);
    let e = String::from_utf8_lossy(&e.stderr).to_string();
    assert!(e.contains("JOB_COMPLETION_INDEX") && e.contains("AWS_BATCH_JOB_ARRAY_INDEX"), "{e}");
    let e = fails(&["convert", "--config", &cfg, "--shard", "0/2", "--overwrite"]);
    assert!(e.contains("--overwrite"), "{e}");
    let e = fails(&["load", "--from", s(&out), "--shard", "0/2", "--replace"]);
    assert!(e.contains("--replace"), "{e}");

    let text = ok(&["plan", "--config", &cfg, "--shards", "4"]);
    assert!(text.starts_with("44 tiles of 3 datasets over 4 shards"), "{text}");
    let plan: serde_json::Value =
        serde_json::from_str(&ok(&["plan", "--config", &cfg, "--shards", "4", "--json"])).unwrap();
    let weights: Vec<u64> =
        plan["per_shard"].as_array().unwrap().iter().map(|s| s["weight"].as_u64().unwrap()).collect();
    let max_tile = plan["assignment"].as_array().unwrap().iter().map(|t| t["weight"].as_u64().unwrap()).max().unwrap();
    assert!(weights.iter().max().unwrap() - weights.iter().min().unwrap() <= max_tile, "{weights:?}");
    assert_eq!(plan["assignment"].as_array().unwrap().len(), 44);
}
