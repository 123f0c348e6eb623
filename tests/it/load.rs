//! `load`, `verify`, `inspect --database-url` against the real PostgreSQL at DATABASE_URL.
//! Every test works in its own schema, dropped afterwards even when the test fails.

use crate::common::*;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// The load tests' queries on their schema.
pub(crate) trait LoadSchema {
    fn count(&self, table: &str) -> i64;
    fn ledger_count(&self) -> i64;
    fn ledger_rows(&self) -> i64;
    fn duplicates(&self, table: &str) -> i64;
    /// Every row, sorted, with values as f64.
    fn rows(&self, table: &str) -> Vec<(i32, i32, f64, f64, f64)>;
    fn has_pk(&self, table: &str) -> bool;
}

impl LoadSchema for Schema {
    fn count(&self, table: &str) -> i64 {
        self.one_i64(&format!("SELECT count(*) FROM {}", self.q(table)))
    }

    fn ledger_count(&self) -> i64 {
        self.one_i64(&format!("SELECT count(*) FROM {}", self.q("raster_tile_loads")))
    }

    fn ledger_rows(&self) -> i64 {
        self.one_i64(&format!("SELECT coalesce(sum(rows), 0)::int8 FROM {}", self.q("raster_tile_loads")))
    }

    fn duplicates(&self, table: &str) -> i64 {
        self.one_i64(&format!(
            "SELECT count(*) FROM (SELECT row_idx, col_idx FROM {} GROUP BY 1, 2 HAVING count(*) > 1) d",
            self.q(table)
        ))
    }

    fn rows(&self, table: &str) -> Vec<(i32, i32, f64, f64, f64)> {
        client()
            .query(&format!("SELECT row_idx, col_idx, x, y, value::float8 FROM {} ORDER BY 1, 2", self.q(table)), &[])
            .unwrap()
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect()
    }

    fn has_pk(&self, table: &str) -> bool {
        client()
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = to_regclass($1) AND indisprimary)",
                &[&self.q(table)],
            )
            .unwrap()
            .get(0)
    }
}

/// Runs rasterstage with `args` and the test database; returns the output.
pub(crate) fn rs(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = bin();
    c.env("DATABASE_URL", db_url()).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

pub(crate) fn rs_ok(args: &[&str]) -> String {
    succeeded(args, rs(args, &[]))
}

pub(crate) fn rs_fails(args: &[&str]) -> String {
    let out = rs(args, &[]);
    assert!(!out.status.success(), "rasterstage {args:?} should have failed: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const W: usize = 150;
const H: usize = 100;
const RES: f64 = 0.5;

/// A Float32 raster with nodata holes (a whole empty window among them) and varied values.
pub(crate) fn float_raster(dir: &Path, seed: u64) -> (std::path::PathBuf, Vec<f32>) {
    let mut rnd = lcg(seed);
    let mut v: Vec<f32> = (0..W * H).map(|_| (rnd() % 100_000) as f32 / 8.0 - 3000.0).collect();
    for r in 0..H {
        for c in 0..W {
            if (r < 32 && c < 32) || (r * 7 + c * 3) % 11 == 0 {
                v[r * W + c] = -9999.0;
            }
        }
    }
    let path = dir.join(format!("f{seed}.tif"));
    let mut spec = RasterSpec::geographic(W, H, RES);
    spec.nodata = Some(-9999.0);
    write_tif(&path, &spec, v.clone());
    (path, v)
}

/// An Int16 raster with nodata.
fn int_raster(dir: &Path) -> std::path::PathBuf {
    let mut rnd = lcg(7);
    let v: Vec<i16> =
        (0..W * H).map(|i| if i % 13 == 0 { -32768 } else { (rnd() % 60_000) as i32 - 30_000 } as i16).collect();
    let path = dir.join("i16.tif");
    let mut spec = RasterSpec::geographic(W, H, RES);
    spec.nodata = Some(-32768.0);
    write_tif(&path, &spec, v);
    path
}

/// Converts `src` as dataset `name` into `root` (window 32: 5 x 4 = 20 tiles).
pub(crate) fn stage(src: &Path, name: &str, root: &Path, extra: &[&str]) {
    let mut args = vec!["convert", s(src), "--name", name, "--out", s(root), "--window", "32", "-q"];
    args.extend_from_slice(extra);
    ok(&args);
}

#[test]
fn load_round_trip_matches_source_cells() {
    if !require(&[Pg, Python]) {
        return;
    }
    let dir = tmp();
    let (src, values) = float_raster(dir.path(), 1);
    let root = dir.path().join("staging");
    stage(&src, "plants", &root, &[]);
    let sc = Schema::new("round");
    let out = rs_ok(&["load", "--from", s(&root), "--dataset", "plants", "--schema", &sc.name, "--jobs", "2"]);
    assert!(out.contains("20 tiles (20 loaded now"), "{out}");

    // Every valid source cell exactly once, at its cell centre, with its exact value.
    let mut expected = Vec::new();
    for r in 0..H {
        for c in 0..W {
            let v = values[r * W + c];
            if v != -9999.0 {
                let x = -180.0 + (c as f64 + 0.5) * RES;
                let y = 90.0 - (r as f64 + 0.5) * RES;
                expected.push((r as i32, c as i32, x, y, v as f64));
            }
        }
    }
    let got = sc.rows("plants");
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
    // And the same cells as the staged Parquet, read by DuckDB.
    let staged: Vec<(i64, i64, f64)> = parquet_cells(&root, "plants");
    let loaded: Vec<(i64, i64, f64)> = got.iter().map(|t| (t.0 as i64, t.1 as i64, t.4)).collect();
    assert_eq!(staged, loaded);

    assert!(sc.has_pk("plants"));
    assert_eq!(sc.ledger_count(), 20, "every tile, the empty one included, is in the ledger");
    assert_eq!(sc.ledger_rows(), expected.len() as i64);
    let c = &mut client();
    let r = c
        .query_one(
            &format!(
                "SELECT table_name, dtype, width, height, tile_count, row_count, method, passthrough, epsg, bounds FROM {} WHERE name = 'plants'",
                sc.q("raster_datasets")
            ),
            &[],
        )
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "plants");
    assert_eq!(r.get::<_, String>(1), "Float32");
    assert_eq!((r.get::<_, i32>(2), r.get::<_, i32>(3)), (W as i32, H as i32));
    assert_eq!(r.get::<_, i32>(4), 20);
    assert_eq!(r.get::<_, i64>(5), expected.len() as i64);
    assert!(r.get::<_, bool>(7));
    assert_eq!(r.get::<_, Option<i32>>(8), Some(4326));
    assert_eq!(r.get::<_, Vec<f64>>(9), vec![-180.0, 40.0, -105.0, 90.0]);
    let ty: String = c
        .query_one(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'value'",
            &[&sc.q("plants")],
        )
        .unwrap()
        .get(0);
    assert_eq!(ty, "real");

    let v = rs_ok(&["verify", "--from", s(&root), "--schema", &sc.name]);
    assert!(v.contains("20 tiles match"), "{v}");
    let i = rs_ok(&["inspect", s(&root), "--database-url", &db_url(), "--schema", &sc.name]);
    assert!(i.contains("loaded 20/20"), "{i}");
}

#[test]
fn parquet_and_zarr_staging_load_identical_tables() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let src = int_raster(dir.path());
    let (pq, z3, z2) = (dir.path().join("pq"), dir.path().join("z3"), dir.path().join("z2"));
    stage(&src, "soil", &pq, &["--format", "parquet"]);
    stage(&src, "soil", &z3, &["--format", "zarr"]);
    stage(&src, "soil", &z2, &["--format", "zarr", "--zarr-version", "2"]);
    let sc = Schema::new("fmt");
    for (root, prefix) in [(&pq, "p_"), (&z3, "z3_"), (&z2, "z2_")] {
        rs_ok(&["load", "--from", s(root), "--schema", &sc.name, "--table-prefix", prefix, "-j", "2"]);
    }
    let p = sc.rows("p_soil");
    assert!(p.len() > 10_000);
    assert_eq!(sc.rows("z3_soil"), p);
    assert_eq!(sc.rows("z2_soil"), p);
    // Same column types too.
    let c = &mut client();
    for t in ["p_soil", "z3_soil", "z2_soil"] {
        let ty: String = c
            .query_one(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'value'",
                &[&sc.q(t)],
            )
            .unwrap()
            .get(0);
        assert_eq!(ty, "smallint", "{t}");
    }
    for (root, prefix) in [(&pq, "p_"), (&z3, "z3_"), (&z2, "z2_")] {
        rs_ok(&["verify", "--from", s(root), "--schema", &sc.name, "--table-prefix", prefix]);
    }
}

#[test]
fn rerun_of_finished_load_changes_nothing() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 2);
    let root = dir.path().join("st");
    stage(&src, "plants", &root, &[]);
    let sc = Schema::new("rerun");
    rs_ok(&["load", "--from", s(&root), "--schema", &sc.name]);
    let ledger_sql =
        format!("SELECT tile_id, checksum, rows, loaded_at::text FROM {} ORDER BY 1", sc.q("raster_tile_loads"));
    let snapshot = |sql: &str| -> Vec<String> {
        client()
            .query(sql, &[])
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{}|{}|{}|{}",
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, i64>(2),
                    r.get::<_, String>(3)
                )
            })
            .collect()
    };
    let (n, ledger, rows) = (sc.count("plants"), snapshot(&ledger_sql), sc.rows("plants"));
    let out = rs_ok(&["load", "--from", s(&root), "--schema", &sc.name]);
    assert!(out.contains("(0 loaded now, 20 already loaded)"), "{out}");
    assert_eq!(sc.count("plants"), n);
    assert_eq!(snapshot(&ledger_sql), ledger, "the ledger is untouched, loaded_at included");
    assert_eq!(sc.rows("plants"), rows);
    assert_eq!(sc.duplicates("plants"), 0);
}

/// Every row of a loaded table: (row_idx, col_idx, x, y, value).
type Rows = Vec<(i32, i32, f64, f64, f64)>;

/// A reference: the same staging loaded without interruption into another schema.
fn reference(root: &Path, tag: &str) -> (Schema, Rows) {
    let sc = Schema::new(tag);
    rs_ok(&["load", "--from", s(root), "--schema", &sc.name]);
    let rows = sc.rows("plants");
    (sc, rows)
}

/// Tiles in the ledger, 0 before the load made it.
pub(crate) fn ledger_if_made(sc: &Schema) -> i64 {
    let made = sc.one_i64(&format!(
        "SELECT (to_regclass('{}') IS NOT NULL)::int::int8",
        sc.q("raster_tile_loads").replace('\'', "''")
    ));
    if made == 1 {
        sc.ledger_count()
    } else {
        0
    }
}

/// Whether a rasterstage backend is in the middle of a COPY into the schema.
pub(crate) fn copy_in_flight(c: &mut postgres::Client, sc: &Schema) -> bool {
    c.query_one(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'rasterstage' \
         AND query LIKE $1 AND state = 'active')",
        &[&format!("COPY \"{}\".%", sc.name)],
    )
    .unwrap()
    .get(0)
}

#[test]
fn kill_9_mid_load_then_rerun_ends_identical() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 3);
    let root = dir.path().join("st");
    stage(&src, "plants", &root, &[]);
    let (_ref_schema, expected) = reference(&root, "kref");
    let sc = Schema::new("kill");
    let mut partial_seen = false;
    // Each round kills the load once it has committed a tile of its own and holds another
    // tile's transaction open mid-COPY (the pause sits there): seen in the ledger and in
    // pg_stat_activity, so the kill lands with transactions open however fast the machine is.
    for round in 1..=3 {
        let before = ledger_if_made(&sc);
        let mut child = bin()
            .env("DATABASE_URL", db_url())
            .env("RASTERSTAGE_TEST_LOAD_DELAY_MS", "150")
            .args(["load", "--from", s(&root), "--schema", &sc.name, "--jobs", "2", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut c = client();
        let what = format!("round {round}: a tile committed and another mid-COPY");
        wait_until(&what, &mut child, || ledger_if_made(&sc) > before && copy_in_flight(&mut c, &sc));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Whatever was interrupted, the table holds exactly the ledger's tiles.
        let exists = sc.one_i64(&format!(
            "SELECT CASE WHEN to_regclass('{}') IS NULL THEN 0 ELSE 1 END::int8",
            sc.q("plants").replace('\'', "''")
        ));
        if exists == 1 {
            assert_eq!(sc.count("plants"), sc.ledger_rows(), "after the kill of round {round}");
            assert_eq!(sc.duplicates("plants"), 0);
            let done = sc.ledger_count();
            partial_seen |= done > 0 && done < 20;
        }
    }
    assert!(partial_seen, "no kill landed mid-load; the test's timing needs adjusting");
    let out = rs_ok(&["load", "--from", s(&root), "--schema", &sc.name, "--jobs", "2"]);
    assert!(!out.contains("20 loaded now"), "the rerun must resume, not start over: {out}");
    assert_eq!(sc.rows("plants"), expected);
    assert_eq!(sc.ledger_count(), 20);
    assert!(sc.has_pk("plants"));
    rs_ok(&["verify", "--from", s(&root), "--schema", &sc.name]);
}

#[test]
fn backend_terminated_mid_copy_is_retried_and_ends_identical() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 4);
    let root = dir.path().join("st");
    stage(&src, "plants", &root, &[]);
    let (_ref_schema, expected) = reference(&root, "tref");
    let sc = Schema::new("term");
    let mut child = bin()
        .env("DATABASE_URL", db_url())
        .env("RASTERSTAGE_TEST_LOAD_DELAY_MS", "250")
        .args(["load", "--from", s(&root), "--schema", &sc.name, "--jobs", "2", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut c = client();
    let mut terminated = 0;
    let start = Instant::now();
    let pattern = format!("COPY \"{}\".%", sc.name);
    // After each termination, the next waits for a tile to commit (the ledger grows): the load
    // gets to make progress and retry, however slow the machine, before it is hit again.
    let mut ledger_at_last = -1;
    while terminated < 3 && child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < CRASH_WAIT, "the load did not end within {CRASH_WAIT:?}");
        if ledger_if_made(&sc) > ledger_at_last {
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = 'rasterstage' AND query LIKE $1 AND state = 'active' AND pid <> pg_backend_pid() LIMIT 1) t",
                    &[&pattern],
                )
                .unwrap()
                .get(0);
            if n > 0 {
                terminated += n;
                ledger_at_last = ledger_if_made(&sc);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(terminated >= 1, "no COPY backend was caught");
    if out.status.success() {
        assert!(stderr.contains("retrying"), "a terminated backend should be retried: {stderr}");
    } else {
        // Retries exhausted is allowed; the rerun must then finish the job.
        rs_ok(&["load", "--from", s(&root), "--schema", &sc.name]);
    }
    assert_eq!(sc.rows("plants"), expected);
    assert_eq!(sc.ledger_count(), 20);
    assert_eq!(sc.duplicates("plants"), 0);
}

#[test]
fn corrupt_tile_fails_alone_and_reloads_after_reconvert() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 5);
    let root = dir.path().join("st");
    stage(&src, "plants", &root, &[]);
    let tile = root.join("plants/tiles/r32_c64.parquet");
    let good = std::fs::read(&tile).unwrap();
    std::fs::write(&tile, &good[..good.len() / 2]).unwrap();
    let sc = Schema::new("corrupt");
    let err = rs_fails(&["load", "--from", s(&root), "--schema", &sc.name]);
    assert!(err.contains("r32_c64"), "{err}");
    assert!(err.contains("1 of 20 tiles failed"), "{err}");
    assert_eq!(sc.ledger_count(), 19);
    let m = manifest(&root, "plants");
    let t = m["tiles"].as_array().unwrap().iter().find(|t| t["id"] == "r32_c64").unwrap().clone();
    let total = m["row_count"].as_i64().unwrap();
    assert_eq!(sc.count("plants"), total - t["row_count"].as_i64().unwrap(), "nothing of the bad tile committed");
    let i = rs_ok(&["inspect", s(&root), "--database-url", &db_url(), "--schema", &sc.name]);
    assert!(i.contains("loaded 19/20"), "{i}");

    // Re-convert (deterministic output: the other tiles keep their checksums).
    stage(&src, "plants", &root, &["--overwrite"]);
    let out = rs_ok(&["load", "--from", s(&root), "--schema", &sc.name]);
    assert!(out.contains("(1 loaded now, 19 already loaded)"), "{out}");
    assert_eq!(sc.count("plants"), total);
    assert!(sc.has_pk("plants"));
    rs_ok(&["verify", "--from", s(&root), "--schema", &sc.name]);
}

#[test]
fn missing_tile_is_named_and_unlisted_file_ignored() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 6);
    let root = dir.path().join("st");
    stage(&src, "plants", &root, &[]);
    let tiles = root.join("plants/tiles");
    std::fs::copy(tiles.join("r0_c32.parquet"), tiles.join("r9999_c0.parquet")).unwrap();
    std::fs::remove_file(tiles.join("r64_c96.parquet")).unwrap();
    let sc = Schema::new("missing");
    let err = rs_fails(&["load", "--from", s(&root), "--schema", &sc.name]);
    assert!(err.contains("r64_c96") && err.contains("missing"), "{err}");
    assert!(err.contains("not listed in dataset.json"), "{err}");
    assert!(err.contains("1 of 20 tiles failed"), "{err}");
    assert_eq!(sc.ledger_count(), 19);
    assert_eq!(sc.count("plants"), sc.ledger_rows());
}

#[test]
fn dataset_json_missing_invalid_or_incomplete() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 8);
    let root = dir.path().join("st");
    stage(&src, "plants", &root, &[]);
    let sc = Schema::new("manifest");
    let err = rs_fails(&["load", "--from", s(&root), "--dataset", "nope", "--schema", &sc.name]);
    assert!(err.contains("no dataset.json"), "{err}");
    let mpath = root.join("plants/dataset.json");
    let good = std::fs::read_to_string(&mpath).unwrap();
    std::fs::write(&mpath, good.replace("\"complete\"", "\"converting\"")).unwrap();
    let err = rs_fails(&["load", "--from", s(&root), "--schema", &sc.name]);
    assert!(err.contains("run convert to finish it"), "{err}");
    std::fs::write(&mpath, "{\"format_version\": 1, \"name\": 3}").unwrap();
    let err = rs_fails(&["load", "--from", s(&root), "--schema", &sc.name]);
    assert!(err.contains("dataset.json") && err.contains("not a valid rasterstage manifest"), "{err}");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = rs_fails(&["load", "--from", s(&empty), "--schema", &sc.name]);
    assert!(err.contains("no staged datasets"), "{err}");
}

#[test]
fn table_of_another_shape_is_refused_unless_replace() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 9);
    let root = dir.path().join("st");
    stage(&src, "plants", &root, &[]);
    let sc = Schema::new("shape");
    client()
        .batch_execute(&format!(
            "CREATE SCHEMA \"{0}\"; CREATE TABLE {1} (id int, name text); INSERT INTO {1} VALUES (1, 'keep me')",
            sc.name,
            sc.q("plants")
        ))
        .unwrap();
    let err = rs_fails(&["load", "--from", s(&root), "--schema", &sc.name]);
    assert!(err.contains("exists with another shape") && err.contains("--replace"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(sc.count("plants"), 1, "the foreign table is untouched");
    rs_ok(&["load", "--from", s(&root), "--schema", &sc.name, "--replace"]);
    assert_eq!(sc.count("plants"), manifest(&root, "plants")["row_count"].as_i64().unwrap());

    // Right shape, rows the ledger does not know: refused too.
    client()
        .batch_execute(&format!(
            "DELETE FROM {0}; CREATE TABLE {1} (LIKE {2}); INSERT INTO {1} VALUES (0, 0, 0, 0, 1)",
            sc.q("raster_tile_loads"),
            sc.q("p_plants"),
            sc.q("plants")
        ))
        .unwrap();
    let err = rs_fails(&["load", "--from", s(&root), "--schema", &sc.name, "--table-prefix", "p_"]);
    assert!(err.contains("did not load"), "{err}");
}

#[test]
fn bad_names_are_refused_and_harmless() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 10);
    let root = dir.path().join("st");
    stage(&src, "plants", &root, &[]);
    let sc = Schema::new("names");
    rs_ok(&["load", "--from", s(&root), "--schema", &sc.name]);
    let evil = "x\"; DROP TABLE raster_datasets; --";
    let err = rs_fails(&["load", "--from", s(&root), "--dataset", evil, "--schema", &sc.name]);
    assert!(err.contains("not a safe SQL identifier"), "{err}");
    let err = rs_fails(&["load", "--from", s(&root), "--schema", evil]);
    assert!(err.contains("--schema") && err.contains("not a safe SQL identifier"), "{err}");
    let err = rs_fails(&["load", "--from", s(&root), "--schema", &sc.name, "--table-prefix", evil]);
    assert!(err.contains("--table-prefix"), "{err}");
    let err = rs_fails(&["verify", "--from", s(&root), "--dataset", evil, "--schema", &sc.name]);
    assert!(err.contains("not a safe SQL identifier"), "{err}");
    let err = fails(&["convert", s(&src), "--name", evil, "--out", s(&root)]);
    assert!(err.contains("not a safe SQL identifier"), "{err}");
    // A staging folder with that name is skipped, never loaded.
    let evil_dir = root.join(evil);
    std::fs::create_dir_all(&evil_dir).unwrap();
    std::fs::copy(root.join("plants/dataset.json"), evil_dir.join("dataset.json")).unwrap();
    rs_ok(&["load", "--from", s(&root), "--schema", &sc.name]);
    assert_eq!(sc.one_i64(&format!("SELECT count(*) FROM {}", sc.q("raster_datasets"))), 1);
    assert!(sc.count("plants") > 0);
}

#[test]
fn unreachable_server_and_missing_database_are_one_line_errors_without_password() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 11);
    let root = dir.path().join("st");
    stage(&src, "plants", &root, &[]);
    let err = rs_fails(&["load", "--from", s(&root), "--database-url", "postgres://alice:s3cr3t-pw@127.0.0.1:1/geo"]);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("host 127.0.0.1 port 1 user alice database geo"), "{err}");
    assert!(!err.contains("s3cr3t-pw"), "{err}");
    let url = url::Url::parse(&db_url()).unwrap();
    let bad_db = format!(
        "postgres://{}:s3cr3t-pw@{}:{}/no_such_db_rasterstage",
        url.username(),
        url.host_str().unwrap(),
        url.port().unwrap_or(5432)
    );
    let err = rs_fails(&["load", "--from", s(&root), "--database-url", &bad_db]);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("database no_such_db_rasterstage") && err.contains("does not exist"), "{err}");
    assert!(!err.contains("s3cr3t-pw"), "{err}");
    // Through PG* variables instead of a URL.
    let out = bin()
        .env_remove("DATABASE_URL")
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", "1")
        .env("PGUSER", "bob")
        .env("PGPASSWORD", "s3cr3t-pw")
        .env("PGDATABASE", "geo")
        .args(["verify", "--from", s(&root)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("host 127.0.0.1 port 1 user bob database geo") && !err.contains("s3cr3t-pw"), "{err}");
}

#[test]
fn pg_variables_and_config_file_select_the_target() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 12);
    let root = dir.path().join("st");
    stage(&src, "plants", &root, &[]);
    let url = url::Url::parse(&db_url()).unwrap();
    let sc = Schema::new("pgenv");
    let out = bin()
        .env_remove("DATABASE_URL")
        .env("PGHOST", url.host_str().unwrap())
        .env("PGPORT", url.port().unwrap_or(5432).to_string())
        .env("PGUSER", url.username())
        .env("PGDATABASE", url.path().trim_start_matches('/'))
        .args(["load", "--from", s(&root), "--schema", &sc.name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(sc.count("plants") > 0);

    let sc2 = Schema::new("cfg");
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "datasets:\n  - name: plants\n    path: {}\noutput:\n  uri: {}\ndatabase:\n  url: {}\n  schema: {}\n  table_prefix: cfg_\n",
            s(&src),
            s(&root),
            db_url(),
            sc2.name
        ),
    )
    .unwrap();
    let out = bin().env_remove("DATABASE_URL").args(["load", "--config", s(&cfg)]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sc2.count("cfg_plants"), sc.count("plants"));
}

#[test]
fn reconverted_tiles_replace_their_old_rows() {
    if !require(&[Pg, Python]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 13);
    let root = dir.path().join("st");
    stage(&src, "plants", &root, &[]);
    let sc = Schema::new("reconv");
    rs_ok(&["load", "--from", s(&root), "--schema", &sc.name]);
    let before = tile_checksums(&root, "plants");
    // New values in the bottom-right corner only, from a source with a new fingerprint.
    let (_, mut v) = float_raster(dir.path(), 13);
    for r in 90..H {
        for c in 140..W {
            v[r * W + c] = 12345.5;
        }
    }
    let mut spec = RasterSpec::geographic(W, H, RES);
    spec.nodata = Some(-9999.0);
    write_tif(&src, &spec, v);
    stage(&src, "plants", &root, &["--overwrite"]);
    let after = tile_checksums(&root, "plants");
    let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    assert!(changed >= 1);
    let out = rs_ok(&["load", "--from", s(&root), "--schema", &sc.name]);
    assert!(out.contains(&format!("({changed} loaded now")), "{out}");
    let staged = parquet_cells(&root, "plants");
    let loaded: Vec<(i64, i64, f64)> = sc.rows("plants").iter().map(|t| (t.0 as i64, t.1 as i64, t.4)).collect();
    assert_eq!(loaded, staged);
    assert_eq!(sc.duplicates("plants"), 0);
}

#[test]
fn verify_catches_a_deleted_row_and_a_changed_value() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 14);
    let root = dir.path().join("st");
    stage(&src, "plants", &root, &[]);
    let sc = Schema::new("verify");
    rs_ok(&["load", "--from", s(&root), "--schema", &sc.name]);
    rs_ok(&["verify", "--from", s(&root), "--schema", &sc.name]);
    let c = &mut client();
    c.batch_execute(&format!(
        "DELETE FROM {0} WHERE (row_idx, col_idx) = (SELECT row_idx, col_idx FROM {0} WHERE row_idx >= 64 AND col_idx < 32 ORDER BY 1, 2 LIMIT 1)",
        sc.q("plants")
    ))
    .unwrap();
    let out = rs(&["verify", "--from", s(&root), "--schema", &sc.name], &[]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("plants r64_c0: rows staged"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 20 tiles differ"));
    c.batch_execute(&format!(
        "UPDATE {0} SET value = value + 1 WHERE (row_idx, col_idx) = (SELECT row_idx, col_idx FROM {0} WHERE row_idx BETWEEN 32 AND 63 AND col_idx BETWEEN 96 AND 127 LIMIT 1)",
        sc.q("plants")
    ))
    .unwrap();
    let out = rs(&["verify", "--from", s(&root), "--schema", &sc.name], &[]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("r64_c0") && stdout.contains("r32_c96"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 of 20 tiles differ"));
}

#[test]
fn rows_deleted_by_hand_lead_to_load_replace() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 15);
    let root = dir.path().join("st");
    stage(&src, "plants", &root, &[]);
    let sc = Schema::new("lost");
    rs_ok(&["load", "--from", s(&root), "--schema", &sc.name]);
    let full = sc.count("plants");
    client().batch_execute(&format!("DELETE FROM {} WHERE row_idx < 3", sc.q("plants"))).unwrap();
    let lost = full - sc.count("plants");
    assert!(lost > 0);
    // Every tile is in the ledger, so load would skip them all: it notices the lost rows.
    let err = rs_fails(&["load", "--from", s(&root), "--schema", &sc.name]);
    assert!(
        err.contains("--replace")
            && err.contains(&format!("holds {} rows", full - lost))
            && err.contains(&full.to_string()),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = rs(&["verify", "--from", s(&root), "--schema", &sc.name], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("load --replace --dataset plants"), "{err}");
    rs_ok(&["load", "--from", s(&root), "--schema", &sc.name, "--replace"]);
    assert_eq!(sc.count("plants"), full);
    rs_ok(&["verify", "--from", s(&root), "--schema", &sc.name]);
    // Loaded and whole again: a rerun skips every tile after its one count.
    assert!(rs_ok(&["load", "--from", s(&root), "--schema", &sc.name]).contains("(0 loaded now, 20 already loaded)"));

    // inspect says which schema it looked in, the default one too.
    let i = rs_ok(&["inspect", s(&root), "--database-url", &db_url(), "--schema", &sc.name]);
    assert!(i.contains(&format!("loaded 20/20 (schema {})", sc.name)), "{i}");
    let i = rs_ok(&["inspect", s(&root), "--database-url", &db_url()]);
    assert!(i.contains("(schema public)"), "{i}");
}
