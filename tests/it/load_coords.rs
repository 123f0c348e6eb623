//! `load --coords view`: a narrow `<table>__cells` and a view named as the table that
//! computes `x`, `y`; the view must give exactly the default table's rows, and resume,
//! replace, verify, inspect and a kill -9 rerun must work with it.

use crate::common::*;
use crate::load::{copy_in_flight, float_raster, ledger_if_made, rs, rs_fails, rs_ok, stage, LoadSchema};
use std::path::Path;
use std::process::Stdio;

/// Every row of `table` sorted, with x, y and value as bits (a bit-for-bit comparison).
fn bits(sc: &Schema, table: &str) -> Vec<(i32, i32, u64, u64, u64)> {
    sc.row_bits(table)
}

fn relkind(sc: &Schema, table: &str) -> Option<String> {
    client()
        .query_opt("SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)", &[&sc.q(table)])
        .unwrap()
        .map(|r| r.get(0))
}

fn columns(sc: &Schema, table: &str) -> Vec<String> {
    client()
        .query(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&sc.q(table)],
        )
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect()
}

fn has_pk(sc: &Schema, table: &str) -> bool {
    client()
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = to_regclass($1) AND indisprimary)",
            &[&sc.q(table)],
        )
        .unwrap()
        .get(0)
}

/// A 0.05° Int16 raster on a short-decimal origin (-10.05, 60.05), whose centres in plain
/// floating point are not the decimal ones: the view must match the stored centres exactly.
fn decimal_grid_raster(dir: &Path) -> std::path::PathBuf {
    let (w, h) = (170, 130);
    let mut rnd = lcg(11);
    let v: Vec<i16> =
        (0..w * h).map(|i| if i % 17 == 0 { -32768 } else { ((rnd() % 60_000) as i32 - 30_000) as i16 }).collect();
    let path = dir.join("dec.tif");
    let mut spec = RasterSpec::geographic(w, h, 0.05);
    (spec.x0, spec.y0, spec.nodata) = (-10.05, 60.05, Some(-32768.0));
    write_tif(&path, &spec, v);
    path
}

/// Loads `root` both ways and checks the view against the table, bit for bit.
fn same_rows_both_ways(root: &Path, tag: &str) {
    let (wide, narrow) = (Schema::new(&format!("{tag}w")), Schema::new(&format!("{tag}n")));
    rs_ok(&["load", "--from", s(root), "--schema", &wide.name]);
    let out = rs_ok(&["load", "--from", s(root), "--schema", &narrow.name, "--coords", "view", "--jobs", "2"]);
    assert!(out.contains("primary key built"), "{out}");
    let want = bits(&wide, "plants");
    assert!(!want.is_empty());
    assert_eq!(bits(&narrow, "plants"), want, "{tag}: the view gives the default table's rows");
    assert_eq!(relkind(&narrow, "plants").as_deref(), Some("v"));
    assert_eq!(columns(&narrow, "plants"), ["row_idx", "col_idx", "x", "y", "value"]);
    assert_eq!(columns(&narrow, "plants__cells"), ["row_idx", "col_idx", "value"]);
    assert!(has_pk(&narrow, "plants__cells"));
    // A query written for the default table runs unchanged and agrees.
    let q = |sc: &Schema| {
        sc.one_i64(&format!(
            "SELECT count(*) FROM {} WHERE x BETWEEN -9.5 AND 1 AND y > 59.5 AND value::float8 > 0",
            sc.q("plants")
        ))
    };
    assert_eq!(q(&narrow), q(&wide));
    let v = rs_ok(&["verify", "--from", s(root), "--schema", &narrow.name]);
    assert!(v.contains("tiles match"), "{v}");
    let i = rs_ok(&["inspect", s(root), "--database-url", &db_url(), "--schema", &narrow.name]);
    assert!(i.contains("loaded 20/20"), "{i}");
}

#[test]
fn coords_view_gives_the_default_tables_rows_bit_for_bit() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 21);
    let root = dir.path().join("st");
    stage(&src, "plants", &root, &[]);
    same_rows_both_ways(&root, "cvf");
    // 0.05°, staged as Zarr in windows of 40: 5 x 4 = 20 tiles.
    let dec = decimal_grid_raster(dir.path());
    let root2 = dir.path().join("st2");
    ok(&["convert", s(&dec), "--name", "plants", "--out", s(&root2), "--window", "40", "--format", "zarr", "-q"]);
    same_rows_both_ways(&root2, "cvd");
}

#[test]
fn coords_view_resumes_replaces_and_refuses_the_other_mode() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 22);
    let root = dir.path().join("st");
    stage(&src, "plants", &root, &[]);
    let sc = Schema::new("cvr");
    let view = ["load", "--from", s(&root), "--schema", &sc.name, "--coords", "view"];
    rs_ok(&view);
    let before = bits(&sc, "plants");
    let out = rs_ok(&view);
    assert!(out.contains("(0 loaded now, 20 already loaded)"), "{out}");
    assert_eq!(bits(&sc, "plants"), before);

    // The default mode refuses the view's table, and --replace turns it into a table.
    let default = ["load", "--from", s(&root), "--schema", &sc.name];
    let err = rs_fails(&default);
    assert!(err.contains("exists with another shape") && err.contains("--replace"), "{err}");
    let mut replace = default.to_vec();
    replace.push("--replace");
    rs_ok(&replace);
    assert_eq!(relkind(&sc, "plants").as_deref(), Some("r"));
    assert_eq!(relkind(&sc, "plants__cells"), None, "the cells table goes with its view");
    assert_eq!(bits(&sc, "plants"), before);

    // And back: the view mode refuses the table unless --replace.
    let err = rs_fails(&view);
    assert!(err.contains("exists with another shape"), "{err}");
    let mut view_replace = view.to_vec();
    view_replace.push("--replace");
    let out = rs_ok(&view_replace);
    assert!(out.contains("20 loaded now"), "{out}");
    assert_eq!(relkind(&sc, "plants").as_deref(), Some("v"));
    assert_eq!(bits(&sc, "plants"), before);
    assert_eq!(sc.ledger_count(), 20);

    // verify sees a row deleted from the cells table.
    client()
        .batch_execute(&format!(
            "DELETE FROM {0} WHERE (row_idx, col_idx) = (SELECT row_idx, col_idx FROM {0} WHERE row_idx >= 64 AND col_idx < 32 ORDER BY 1, 2 LIMIT 1)",
            sc.q("plants__cells")
        ))
        .unwrap();
    let out = rs(&["verify", "--from", s(&root), "--schema", &sc.name], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("plants r64_c0: rows staged"));
    // A full rerun finds the lost row, like the default table's.
    let err = rs_fails(&view);
    assert!(err.contains("rows were deleted outside rasterstage"), "{err}");
}

#[test]
fn coords_view_kill_9_mid_load_then_rerun_ends_identical() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 23);
    let root = dir.path().join("st");
    stage(&src, "plants", &root, &[]);
    let reference = Schema::new("cvkref");
    rs_ok(&["load", "--from", s(&root), "--schema", &reference.name]);
    let expected = bits(&reference, "plants");
    let sc = Schema::new("cvkill");
    let mut partial_seen = false;
    // Each round kills the load once it has committed a tile of its own and holds another
    // tile's transaction open mid-COPY, as load.rs's kill test does.
    for round in 1..=3 {
        let before = ledger_if_made(&sc);
        let mut child = bin()
            .env("DATABASE_URL", db_url())
            .env("RASTERSTAGE_TEST_LOAD_DELAY_MS", "150")
            .args(["load", "--from", s(&root), "--schema", &sc.name, "--coords", "view", "--jobs", "2", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut c = client();
        let what = format!("round {round}: a tile committed and another mid-COPY");
        wait_until(&what, &mut child, || ledger_if_made(&sc) > before && copy_in_flight(&mut c, &sc));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if relkind(&sc, "plants__cells").is_some() {
            let rows = sc.count("plants__cells");
            let ledger = sc.one_i64(&format!("SELECT coalesce(sum(rows), 0)::int8 FROM {}", sc.q("raster_tile_loads")));
            assert_eq!(rows, ledger, "after the kill of round {round}");
            let done = sc.ledger_count();
            partial_seen |= done > 0 && done < 20;
        }
    }
    assert!(partial_seen, "no kill landed mid-load; the test's timing needs adjusting");
    let out = rs_ok(&["load", "--from", s(&root), "--schema", &sc.name, "--coords", "view", "--jobs", "2"]);
    assert!(!out.contains("20 loaded now"), "the rerun must resume, not start over: {out}");
    assert_eq!(bits(&sc, "plants"), expected);
    assert_eq!(sc.ledger_count(), 20);
    assert!(has_pk(&sc, "plants__cells"));
    rs_ok(&["verify", "--from", s(&root), "--schema", &sc.name]);
}

/// `--geometry` stands for the stored `x, y`; with `--coords view` there are none: one line,
/// before the database is touched (the schema is never made).
#[test]
fn coords_view_with_geometry_is_one_clear_error() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 5);
    let root = dir.path().join("st");
    stage(&src, "plants", &root, &[]);
    let sc = Schema::new("cvgeom");
    let err = rs_fails(&["load", "--from", s(&root), "--schema", &sc.name, "--coords", "view", "--geometry"]);
    one_error_line(&err, &["--geometry needs the coordinates stored", "--coords stored"]);
    let made = sc.one_i64(&format!("SELECT count(*)::int8 FROM pg_namespace WHERE nspname = '{}'", sc.name));
    assert_eq!(made, 0, "nothing is created for a refused load");
}
