//! Neighbours and accidents: two loads (or two `merge --to-postgres`) of one dataset at once,
//! a worker that panics, and the temporary files a `kill -9` leaves behind.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// Test hook (src/stage/commit.rs): the worker of this tile panics.
const PANIC_TILE: &str = "RASTERSTAGE_TEST_PANIC_TILE";
/// Test hook (src/load/mod.rs): a pause inside each tile's transaction, so runs overlap.
const LOAD_DELAY: &str = "RASTERSTAGE_TEST_LOAD_DELAY_MS";

/// The robustness tests' queries on their schema.
trait RobustSchema {
    fn one(&self, sql: &str) -> i64;
    /// Rows, distinct cells and whether the primary key exists, of table `t`.
    fn table(&self, t: &str) -> (i64, i64, bool);
}

impl RobustSchema for Schema {
    fn one(&self, sql: &str) -> i64 {
        client().query_one(&sql.replace("{s}", &format!("\"{}\"", self.name)), &[]).unwrap().get(0)
    }

    fn table(&self, t: &str) -> (i64, i64, bool) {
        let rows = self.one(&format!("SELECT count(*) FROM {{s}}.{t}"));
        let cells = self.one(&format!("SELECT count(*) FROM (SELECT DISTINCT row_idx, col_idx FROM {{s}}.{t}) d"));
        let pk = self
            .one(&format!("SELECT count(*) FROM pg_index WHERE indrelid = to_regclass('{{s}}.{t}') AND indisprimary"));
        (rows, cells, pk == 1)
    }
}

/// A Float32 raster `w` x `h` at 0.1 degree with nodata holes.
fn raster(dir: &Path, name: &str, w: usize, h: usize, seed: u64) -> PathBuf {
    let mut rnd = lcg(seed);
    let v: Vec<f32> =
        (0..w * h).map(|i| if i % 13 == 0 { -9999.0 } else { (rnd() % 10_000) as f32 / 4.0 - 500.0 }).collect();
    let path = dir.join(format!("{name}.tif"));
    write_tif(&path, &RasterSpec { nodata: Some(-9999.0), ..RasterSpec::geographic(w, h, 0.1) }, v);
    path
}

/// Starts rasterstage `args` against the test database, with `env`.
fn start(args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    let mut c = bin();
    c.env("DATABASE_URL", db_url()).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

/// Runs `args` twice at the same moment; both must succeed; returns both stdouts.
fn twice_at_once(args: &[&str], env: &[(&str, &str)]) -> [String; 2] {
    let (a, b) = (start(args, env), start(args, env));
    let (a, b): (Output, Output) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    [succeeded(args, a), succeeded(args, b)]
}

/// Of two runs that loaded one table at once, exactly one built the primary key, and the
/// other said another run did, or found everything loaded (it started after the first ended).
fn key_built_once(outs: &[String; 2]) {
    let built = outs.iter().filter(|o| o.contains(", primary key built")).count();
    assert_eq!(built, 1, "exactly one run builds the primary key: {outs:?}");
    let other = outs.iter().find(|o| !o.contains(", primary key built")).unwrap();
    assert!(
        other.contains("primary key already built by another run") || other.contains("(0 loaded now"),
        "the other run says the key was built by another run: {other}"
    );
}

#[test]
fn two_loads_of_one_dataset_at_once_both_succeed() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let root = dir.path().join("staging");
    let src = raster(dir.path(), "cells", 160, 160, 5);
    ok(&["convert", s(&src), "--name", "cells", "--out", s(&root), "--window", "16", "-q"]);
    let staged = manifest(&root, "cells")["row_count"].as_i64().unwrap();
    assert!(staged > 20_000);
    for _ in 0..3 {
        let sc = Schema::new("loads");
        let args = ["load", "--from", s(&root), "--schema", &sc.name, "-j", "2", "-q"];
        let outs = twice_at_once(&args, &[(LOAD_DELAY, "5")]);
        key_built_once(&outs);
        assert_eq!(sc.table("cells"), (staged, staged, true), "rows, distinct cells, primary key");
        assert_eq!(sc.one("SELECT count(*) FROM {s}.raster_tile_loads"), 100);
        assert_eq!(sc.one("SELECT count(*) FROM {s}.raster_datasets WHERE name = 'cells'"), 1);
    }
}

#[test]
fn two_merges_to_postgres_at_once_both_succeed() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let root = dir.path().join("staging");
    for (name, seed) in [("a", 1), ("b", 2)] {
        let src = raster(dir.path(), name, 96, 80, seed);
        ok(&["convert", s(&src), "--name", name, "--out", s(&root), "--window", "16", "-q"]);
    }
    for round in 0..2 {
        let sc = Schema::new("merges");
        // A fresh merged folder each round: the two runs also stage it at the same time.
        let out = dir.path().join(format!("round{round}")).join("ab");
        let args = [
            "merge",
            "--from",
            s(&root),
            "--datasets",
            "a,b",
            "--out",
            s(&out),
            "--to-postgres",
            "--schema",
            &sc.name,
            "-j",
            "2",
            "-q",
        ];
        let outs = twice_at_once(&args, &[(LOAD_DELAY, "5")]);
        key_built_once(&outs);
        let m = manifest(out.parent().unwrap(), "ab");
        assert_eq!(m["status"], "complete");
        let staged = m["row_count"].as_i64().unwrap();
        assert_eq!(sc.table("ab"), (staged, staged, true), "rows, distinct cells, primary key");
    }
}

/// Every file under `root` whose name is object_store's temporary `<name>#<digits>`.
fn temp_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if p.is_dir() {
                dirs.push(p);
            } else if name.split_once('#').is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The staged objects of dataset `name` (dataset.json aside: it holds the folder's URL) and
/// its tiles, totals and checksums.
fn staged(root: &Path, name: &str) -> (Vec<(String, Vec<u8>)>, serde_json::Value) {
    let files = files_under(&root.join(name)).into_iter().filter(|(p, _)| p != "dataset.json").collect();
    let m = manifest(root, name);
    (files, serde_json::json!([m["status"], m["tiles"], m["row_count"], m["value_sum"], m["settings_hash"]]))
}

#[test]
fn a_panicking_convert_worker_fails_its_tile_alone_and_the_rerun_completes() {
    let dir = tmp();
    let src = raster(dir.path(), "cells", 96, 64, 7);
    let (root, clean) = (dir.path().join("staging"), dir.path().join("clean"));
    let args = |out: &Path| -> Vec<String> {
        ["convert", s(&src), "--name", "cells", "--out", s(out), "--window", "16", "--threads", "1", "-q"]
            .map(String::from)
            .to_vec()
    };
    let a = args(&root);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    // One thread: the tiles after the panicking one reuse its (poisoned) source slot.
    let out = run_env(&a, &[(PANIC_TILE, "r16_c32")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("cells") && errors[0].contains("1 of 24 tiles failed"), "{err}");
    assert!(errors[0].contains("tile r16_c32") && errors[0].contains("worker panicked"), "{err}");
    assert!(!err.contains("panicked at") && !err.contains("RUST_BACKTRACE"), "the default panic report leaks: {err}");
    for l in err.lines().filter(|l| !l.trim().is_empty()) {
        assert!(l.contains("r16_c32"), "every line is about the failed tile: {l}");
    }
    let m = manifest(&root, "cells");
    assert_eq!(m["status"], "converting");
    assert!(!root.join("cells/_tiles/r16_c32.json").exists(), "the panicking tile is not committed");

    let again = ok(&a);
    assert!(again.contains("(1 written now)"), "{again}");
    let b = args(&clean);
    ok(&b.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(staged(&root, "cells") == staged(&clean, "cells"), "the resumed dataset differs from a clean convert");
}

#[test]
fn a_panicking_merge_worker_fails_its_tile_alone_and_the_rerun_completes() {
    let dir = tmp();
    let root = dir.path().join("staging");
    for (name, seed) in [("a", 3), ("b", 4)] {
        let src = raster(dir.path(), name, 64, 48, seed);
        ok(&["convert", s(&src), "--name", name, "--out", s(&root), "--window", "16", "-q"]);
    }
    let clean = dir.path().join("clean");
    let merge = |out: &Path| -> Vec<String> {
        ["merge", "--from", s(&root), "--datasets", "a,b", "--out", s(&out.join("ab")), "-j", "2", "-q"]
            .map(String::from)
            .to_vec()
    };
    let a = merge(&root);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = run_env(&a, &[(PANIC_TILE, "r0_c16")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("ab: 1 of 12 tiles failed") && errors[0].contains("tile r0_c16"), "{err}");
    assert!(!err.contains("panicked at"), "{err}");
    assert!(ok(&a).contains("(1 written now)"));
    let b = merge(&clean);
    ok(&b.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(staged(&root, "ab") == staged(&clean, "ab"), "the resumed merge differs from a clean one");
}

#[test]
fn a_panicking_load_worker_fails_its_tile_alone_and_the_rerun_completes() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let root = dir.path().join("staging");
    let src = raster(dir.path(), "cells", 64, 64, 9);
    ok(&["convert", s(&src), "--name", "cells", "--out", s(&root), "--window", "16", "-q"]);
    let staged = manifest(&root, "cells")["row_count"].as_i64().unwrap();
    let sc = Schema::new("panic");
    let args = ["load", "--from", s(&root), "--schema", &sc.name, "-j", "1", "-q"];
    let out = start(&args, &[(PANIC_TILE, "r16_c16")]).wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().filter(|l| l.starts_with("error:")).count(), 1, "{err}");
    assert!(err.contains("cells: 1 of 16 tiles failed"), "{err}");
    assert!(err.contains("tile r16_c16") && err.contains("worker panicked"), "{err}");
    assert!(!err.contains("panicked at"), "{err}");
    assert_eq!(sc.one("SELECT count(*) FROM {s}.raster_tile_loads"), 15, "every other tile is committed");
    let again = start(&args, &[]).wait_with_output().unwrap();
    let again = succeeded(&args, again);
    assert!(again.contains("(1 loaded now") && again.contains(", primary key built"), "{again}");
    assert_eq!(sc.table("cells"), (staged, staged, true));
}

fn count_records(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|it| it.count()).unwrap_or(0)
}

/// Half-written objects as object_store names them, where a killed run would leave them.
fn plant_leftovers(ds: &Path, keys: &[&str]) {
    for k in keys {
        let p = ds.join(k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"half-written").unwrap();
    }
}

#[test]
fn a_rerun_after_kill_9_removes_the_temporary_files() {
    let dir = tmp();
    let src = raster(dir.path(), "cells", 320, 320, 11);
    let (root, clean) = (dir.path().join("staging"), dir.path().join("clean"));
    let args = |out: &Path| -> Vec<String> {
        ["convert", s(&src), "--name", "cells", "--out", s(out), "--window", "16", "--threads", "2", "-q"]
            .map(String::from)
            .to_vec()
    };
    let a = args(&root);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut child = bin()
        .args(&a)
        .env("RASTERSTAGE_TEST_TILE_DELAY_MS", "20")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let records = root.join("cells/_tiles");
    let deadline = Instant::now() + Duration::from_secs(120);
    while count_records(&records) < 5 {
        assert!(child.try_wait().unwrap().is_none(), "convert ended before it could be killed");
        assert!(Instant::now() < deadline, "no tile committed after 120 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(manifest(&root, "cells")["status"], "converting");
    // What a kill in the middle of a put leaves: the object under its temporary name.
    let ds = root.join("cells");
    plant_leftovers(
        &ds,
        &["tiles/r304_c304.parquet#1", "_tiles/r304_c304.json#1", "dataset.json#2", "tiles/r0_c0.parquet#3"],
    );
    // The kill itself may have left one more.
    assert!(temp_files(&root).len() >= 4, "{:?}", temp_files(&root));

    // inspect never lists them.
    let shown = ok(&["inspect", s(&root), "--json"]);
    assert!(!shown.contains('#'), "{shown}");
    assert!(shown.contains("\"converting\""), "{shown}");

    ok(&a);
    assert_eq!(temp_files(&root), Vec::<String>::new(), "the rerun removes what the killed run left");
    let b = args(&clean);
    ok(&b.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(staged(&root, "cells") == staged(&clean, "cells"), "the resumed dataset differs from a clean convert");

    // A complete merged dataset with leftovers: the rerun (nothing to do) removes them too.
    let src2 = raster(dir.path(), "other", 320, 320, 12);
    ok(&["convert", s(&src2), "--name", "other", "--out", s(&root), "--window", "16", "-q"]);
    let merge = ["merge", "--from", s(&root), "--datasets", "cells,other", "--name", "both", "-q"];
    ok(&merge);
    let before = staged(&root, "both");
    plant_leftovers(&root.join("both"), &["tiles/r0_c0.parquet#1", "_tiles/r0_c0.json#4"]);
    assert!(ok(&merge).contains("(0 written now)"));
    assert_eq!(temp_files(&root), Vec::<String>::new());
    assert!(staged(&root, "both") == before, "cleaning up changed the merged dataset");
}
