//! `load --geometry` against the real PostGIS at DATABASE_URL (scripts/setup.sh installs
//! Debian's postgresql-NN-postgis-3, scripts/services.sh creates the extension in database
//! test): polygon queries on geom return exactly the cells the same query on x/y returns.
//! Every test works in its own schema; the extension lives in `public`, once per database.

use crate::common::*;
use crate::load::{float_raster, rs, rs_fails, rs_ok, stage, LoadSchema};
use std::collections::BTreeSet;
use std::path::Path;

/// PostGIS in the test database: services.sh creates it; this makes a run against another
/// DATABASE_URL work too. The advisory lock keeps parallel tests from racing on CREATE.
fn postgis() {
    client()
        .batch_execute(
            "SELECT pg_advisory_lock(hashtext('rasterstage-test:postgis')); \
             CREATE EXTENSION IF NOT EXISTS postgis; \
             SELECT pg_advisory_unlock(hashtext('rasterstage-test:postgis'));",
        )
        .unwrap_or_else(|e| {
            panic!(
                "these tests need PostGIS in {}: run scripts/setup.sh (it installs postgresql-NN-postgis-3): {e}",
                db_url()
            )
        });
}

/// `(row_idx, col_idx)` of every row `sql` returns.
fn cells(sql: &str) -> BTreeSet<(i32, i32)> {
    client()
        .query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn one_string(sql: &str) -> String {
    client().query_one(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
}

/// The `format_type` of `geom` in table `qt`, or `None` without the column.
fn geom_type(qt: &str) -> Option<String> {
    client()
        .query_opt(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'geom'",
            &[&qt],
        )
        .unwrap()
        .map(|r| r.get(0))
}

/// GiST indexes on `geom` of `qt`.
fn gist_indexes(qt: &str) -> i64 {
    client()
        .query_one(
            "SELECT count(*) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             WHERE i.indrelid = to_regclass($1) AND am.amname = 'gist' AND a.attname = 'geom'",
            &[&qt],
        )
        .unwrap()
        .get(0)
}

/// Rows of `qt` whose geom is missing or not the point (x, y) with `srid`.
fn misplaced(qt: &str, srid: i32) -> i64 {
    client()
        .query_one(
            &format!(
                "SELECT count(*) FROM {qt} WHERE geom IS NULL OR ST_X(geom) <> x OR ST_Y(geom) <> y OR ST_SRID(geom) <> $1"
            ),
            &[&srid],
        )
        .unwrap()
        .get(0)
}

/// Whether `(x, y)` is inside the polygon `ring` (closed: last vertex = first), by ray
/// casting; also returns the distance to the nearest edge, so that a test can make sure no
/// point sits on an edge (where "inside" depends on rounding).
fn inside(ring: &[(f64, f64)], x: f64, y: f64) -> (bool, f64) {
    let (mut is_in, mut near) = (false, f64::INFINITY);
    for w in ring.windows(2) {
        let ((x1, y1), (x2, y2)) = (w[0], w[1]);
        if (y1 > y) != (y2 > y) && x < x1 + (y - y1) * (x2 - x1) / (y2 - y1) {
            is_in = !is_in;
        }
        let (dx, dy) = (x2 - x1, y2 - y1);
        let t = (((x - x1) * dx + (y - y1) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
        near = near.min(((x1 + t * dx - x).powi(2) + (y1 + t * dy - y).powi(2)).sqrt());
    }
    (is_in, near)
}

/// An irregular, concave polygon over part of the test raster (x -180..-105, y 40..90).
const RING: [(f64, f64); 7] =
    [(-176.1, 44.3), (-121.2, 47.7), (-110.9, 86.1), (-139.3, 61.2), (-151.1, 83.3), (-168.7, 63.9), (-176.1, 44.3)];

fn ring_wkt() -> String {
    let pts: Vec<String> = RING.iter().map(|(x, y)| format!("{x} {y}")).collect();
    format!("POLYGON(({}))", pts.join(", "))
}

#[test]
fn polygon_queries_on_geom_return_the_cells_inside_as_on_x_y() {
    if !require(&[Pg]) {
        return;
    }
    postgis();
    let dir = tmp();
    let (src, values) = float_raster(dir.path(), 3);
    let root = dir.path().join("staging");
    stage(&src, "plants", &root, &[]);
    let sc = Schema::new("gis");
    let out = rs_ok(&["load", "--from", s(&root), "--schema", &sc.name, "--jobs", "2", "--geometry"]);
    assert!(
        out.contains("20 tiles (20 loaded now") && out.contains("primary key and GiST index on geom built"),
        "{out}"
    );
    let qt = sc.q("plants");

    assert_eq!(geom_type(&qt).as_deref(), Some("geometry(Point,4326)"));
    assert_eq!(one_string(&format!("SELECT Find_SRID('{}', 'plants', 'geom')::text", sc.name)), "4326");
    assert_eq!(gist_indexes(&qt), 1);
    assert_eq!(misplaced(&qt, 4326), 0);
    let rows = sc.count("plants");
    assert_eq!(rows as usize, values.iter().filter(|v| **v != -9999.0).count());

    // A rectangle: ST_Within is strictly inside, so the same as open bounds on x/y (the
    // edges are off the cell centres, which lie on .25 and .75).
    let (x0, y0, x1, y1) = (-170.3, 52.1, -140.6, 71.9);
    let by_geom = cells(&format!(
        "SELECT row_idx, col_idx FROM {qt} WHERE ST_Within(geom, ST_MakeEnvelope({x0}, {y0}, {x1}, {y1}, 4326))"
    ));
    let by_xy =
        cells(&format!("SELECT row_idx, col_idx FROM {qt} WHERE x > {x0} AND x < {x1} AND y > {y0} AND y < {y1}"));
    assert!(!by_geom.is_empty() && by_geom.len() < rows as usize);
    assert_eq!(by_geom, by_xy);

    // An irregular polygon: the same cells as the query on points made from x/y, and as the
    // source raster's valid cells whose centres fall inside it.
    let poly = format!("ST_GeomFromText('{}', 4326)", ring_wkt());
    let by_geom = cells(&format!("SELECT row_idx, col_idx FROM {qt} WHERE ST_Within(geom, {poly})"));
    let by_xy = cells(&format!(
        "SELECT row_idx, col_idx FROM {qt} WHERE ST_Within(ST_SetSRID(ST_MakePoint(x, y), 4326), {poly})"
    ));
    let (w, h, res) = (150usize, 100usize, 0.5);
    let mut expected = BTreeSet::new();
    for r in 0..h {
        for c in 0..w {
            let (x, y) = (-180.0 + (c as f64 + 0.5) * res, 90.0 - (r as f64 + 0.5) * res);
            let (is_in, near) = inside(&RING, x, y);
            assert!(near > 1e-6, "fixture: cell centre ({x}, {y}) lies on an edge of the polygon");
            if is_in && values[r * w + c] != -9999.0 {
                expected.insert((r as i32, c as i32));
            }
        }
    }
    assert!(expected.len() > 100, "the polygon should hold many cells, holds {}", expected.len());
    assert_eq!(by_geom, expected);
    assert_eq!(by_xy, expected);

    // The GiST index serves the query, with the same answer.
    let mut c = client();
    let mut tx = c.transaction().unwrap();
    tx.batch_execute("SET LOCAL enable_seqscan = off").unwrap();
    let plan: Vec<String> = tx
        .query(&format!("EXPLAIN SELECT row_idx, col_idx FROM {qt} WHERE ST_Within(geom, {poly})"), &[])
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    assert!(plan.iter().any(|l| l.contains("plants_geom_idx")), "{plan:?}");
    let with_index: BTreeSet<(i32, i32)> = tx
        .query(&format!("SELECT row_idx, col_idx FROM {qt} WHERE ST_Within(geom, {poly})"), &[])
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(with_index, expected);
    drop(tx);

    let v = rs_ok(&["verify", "--from", s(&root), "--schema", &sc.name]);
    assert!(v.contains("plants: 20 tiles match"), "{v}");
}

/// A database of its own, made from template0 (so without PostGIS), dropped on drop.
struct ScratchDb {
    name: String,
}

impl ScratchDb {
    fn new() -> ScratchDb {
        let name = format!("rs_nogis_{}", std::process::id());
        let mut c = client();
        // One statement each: DROP/CREATE DATABASE cannot run in the implicit transaction of
        // a multi-statement batch.
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0")).unwrap();
        ScratchDb { name }
    }

    fn url(&self) -> String {
        let base = db_url();
        let (server, _) = base.rsplit_once('/').unwrap();
        format!("{server}/{}", self.name)
    }

    fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls).unwrap()
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&db_url(), postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

#[test]
fn geometry_without_postgis_is_one_clear_error_and_postgis_may_live_off_the_search_path() {
    if !require(&[Pg]) {
        return;
    }
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 4);
    let root = dir.path().join("staging");
    stage(&src, "plants", &root, &[]);
    let db = ScratchDb::new();
    let url = db.url();
    let args = ["load", "--from", s(&root), "--schema", "gis", "--geometry"];
    let out = rs(&args, &[("DATABASE_URL", &url), ("RUST_LOG", "error")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    one_error_line(
        &stderr,
        &["--geometry", "PostGIS", &format!("database {}", db.name), "CREATE EXTENSION postgis", "without --geometry"],
    );
    let schemas: i64 =
        db.client().query_one("SELECT count(*) FROM pg_namespace WHERE nspname = 'gis'", &[]).unwrap().get(0);
    assert_eq!(schemas, 0, "nothing may be written without PostGIS");
    // The same load without --geometry works there: the error was PostGIS's absence alone.
    let out = rs(&["load", "--from", s(&root), "--schema", "gis"], &[("DATABASE_URL", &url)]);
    succeeded(&args, out);

    // PostGIS in a schema of its own, off the search_path: the type is named with it, the
    // shape check of a rerun agrees with it, and verify finds its functions.
    db.client().batch_execute("CREATE SCHEMA gis_ext; CREATE EXTENSION postgis SCHEMA gis_ext").unwrap();
    let geo = ["load", "--from", s(&root), "--schema", "gis2", "--geometry"];
    let out = succeeded(&geo, rs(&geo, &[("DATABASE_URL", &url)]));
    assert!(out.contains("GiST index on geom built"), "{out}");
    let rerun = succeeded(&geo, rs(&geo, &[("DATABASE_URL", &url)]));
    assert!(rerun.contains("(0 loaded now, 20 already loaded)"), "{rerun}");
    let verify = ["verify", "--from", s(&root), "--schema", "gis2"];
    succeeded(&verify, rs(&verify, &[("DATABASE_URL", &url)]));
    let mut c = db.client();
    let ty: String = c
        .query_one(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'gis2.plants'::regclass AND attname = 'geom'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(ty, "gis_ext.geometry(Point,4326)");
    let bad: i64 = c
        .query_one("SELECT count(*) FROM gis2.plants WHERE gis_ext.ST_X(geom) <> x OR gis_ext.ST_Y(geom) <> y", &[])
        .unwrap()
        .get(0);
    assert_eq!(bad, 0);
}

#[test]
fn geometry_resume_rerun_replace_and_verify() {
    if !require(&[Pg]) {
        return;
    }
    postgis();
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 5);
    let root = dir.path().join("staging");
    stage(&src, "plants", &root, &["--format", "zarr"]);
    let sc = Schema::new("gisre");
    let qt = sc.q("plants");
    let load = ["load", "--from", s(&root), "--schema", &sc.name, "--geometry", "--jobs", "2"];

    // One tile fails: the others commit with their geom, and no index is built yet.
    let out = rs(&load, &[("RASTERSTAGE_TEST_PANIC_TILE", "r32_c64")]);
    assert!(!out.status.success());
    assert_eq!(sc.ledger_count(), 19);
    assert_eq!(gist_indexes(&qt), 0);
    // The rerun loads that tile only, then builds both indexes.
    let out = rs_ok(&load);
    assert!(out.contains("(1 loaded now, 19 already loaded)") && out.contains("GiST index on geom built"), "{out}");
    assert_eq!(gist_indexes(&qt), 1);
    assert_eq!(misplaced(&qt, 4326), 0);
    let rows = sc.count("plants");
    // Nothing to do the third time.
    let out = rs_ok(&load);
    assert!(out.contains("(0 loaded now, 20 already loaded)") && !out.contains("built"), "{out}");
    assert_eq!(sc.count("plants"), rows);

    // The table has geom: a load without --geometry is refused (it would leave geom empty).
    let err = rs_fails(&["load", "--from", s(&root), "--schema", &sc.name]);
    one_error_line(&err, &["has a geom column (geometry(Point,4326), loaded with --geometry)", "with --geometry too"]);

    // verify notices a geom that is not at (x, y), and a missing one.
    client().batch_execute(&format!("UPDATE {qt} SET geom = ST_Translate(geom, 0.5, 0) WHERE row_idx = 40")).unwrap();
    let err = rs_fails(&["verify", "--from", s(&root), "--schema", &sc.name]);
    let line = one_error_line(&err, &["have a geom other than their (x, y)", "load --replace --geometry"]);
    assert!(line.contains("0 rows have no geom"), "{line}");
    // --replace reloads it whole, with geom and its index.
    let out = rs_ok(&["load", "--from", s(&root), "--schema", &sc.name, "--geometry", "--replace"]);
    assert!(out.contains("(20 loaded now") && out.contains("GiST index on geom built"), "{out}");
    assert_eq!((sc.count("plants"), misplaced(&qt, 4326), gist_indexes(&qt)), (rows, 0, 1));
    rs_ok(&["verify", "--from", s(&root), "--schema", &sc.name]);
    // And without --geometry, --replace drops the column.
    rs_ok(&["load", "--from", s(&root), "--schema", &sc.name, "--replace"]);
    assert_eq!(geom_type(&qt), None);
    rs_ok(&["verify", "--from", s(&root), "--schema", &sc.name]);
    let err = rs_fails(&load);
    one_error_line(&err, &["has no geom column", "--replace --geometry"]);
}

#[test]
fn geometry_index_is_built_once_by_concurrent_loads_and_shards() {
    if !require(&[Pg]) {
        return;
    }
    postgis();
    let dir = tmp();
    let (src, _) = float_raster(dir.path(), 6);
    let root = dir.path().join("staging");
    stage(&src, "plants", &root, &[]);

    // Two loads at once: both succeed, each tile once, one GiST index.
    let sc = Schema::new("giscc");
    let qt = sc.q("plants");
    let args = ["load", "--from", s(&root), "--schema", &sc.name, "--geometry", "--jobs", "1"];
    let spawn = || {
        bin()
            .env("DATABASE_URL", db_url())
            .env("RASTERSTAGE_TEST_LOAD_DELAY_MS", "20")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        succeeded(&args, child.wait_with_output().unwrap());
    }
    assert_eq!((sc.ledger_count(), gist_indexes(&qt), misplaced(&qt, 4326)), (20, 1, 0));
    let rows = sc.count("plants");

    // Shards: the last one to finish builds the index.
    let sh = Schema::new("gissh");
    let qs = sh.q("plants");
    let shard = |k: &str| rs_ok(&["load", "--from", s(&root), "--schema", &sh.name, "--geometry", "--shard", k]);
    let first = shard("0/2");
    assert!(!first.contains("built"), "{first}");
    assert_eq!(gist_indexes(&qs), 0);
    let last = shard("1/2");
    assert!(last.contains("primary key and GiST index on geom built"), "{last}");
    assert_eq!((sh.count("plants"), gist_indexes(&qs), misplaced(&qs, 4326)), (rows, 1, 0));
}

#[test]
fn geometry_on_merged_datasets() {
    if !require(&[Pg]) {
        return;
    }
    postgis();
    let dir = tmp();
    let root = dir.path().join("staging");
    for (seed, name) in [(7, "a"), (8, "b")] {
        let (src, _) = float_raster(dir.path(), seed);
        stage(&src, name, &root, &[]);
    }
    let sc = Schema::new("gism");
    for (name, format) in [("m", "parquet"), ("mz", "zarr")] {
        let out = root.join(name);
        ok(&["merge", "--from", s(&root), "--datasets", "a,b", "--out", s(&out), "--format", format, "-q"]);
        rs_ok(&["load", "--from", s(&root), "--dataset", name, "--schema", &sc.name, "--geometry"]);
        let qt = sc.q(name);
        assert_eq!(geom_type(&qt).as_deref(), Some("geometry(Point,4326)"));
        assert_eq!((misplaced(&qt, 4326), gist_indexes(&qt)), (0, 1));
        let poly = format!("ST_GeomFromText('{}', 4326)", ring_wkt());
        let by_geom = cells(&format!("SELECT row_idx, col_idx FROM {qt} WHERE ST_Within(geom, {poly})"));
        let by_xy = cells(&format!(
            "SELECT row_idx, col_idx FROM {qt} WHERE ST_Within(ST_SetSRID(ST_MakePoint(x, y), 4326), {poly})"
        ));
        assert!(by_geom.len() > 100);
        assert_eq!(by_geom, by_xy);
        rs_ok(&["verify", "--from", s(&root), "--dataset", name, "--schema", &sc.name]);
    }
}

/// A Float32 raster in a CRS with no EPSG code (a Lambert azimuthal equal-area of its own).
fn custom_crs_raster(path: &Path) {
    let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut ds = driver.create_with_band_type::<f32, _>(path, 40, 30, 1).unwrap();
    ds.set_geo_transform(&[100_000.0, 1000.0, 0.0, 200_000.0, 0.0, -1000.0]).unwrap();
    let srs = gdal::spatial_ref::SpatialRef::from_proj4(
        "+proj=laea +lat_0=47.3 +lon_0=11.7 +x_0=0 +y_0=0 +ellps=GRS80 +units=m +no_defs",
    )
    .unwrap();
    ds.set_spatial_ref(&srs).unwrap();
    let mut band = ds.rasterband(1).unwrap();
    let mut buf = gdal::raster::Buffer::new((40, 30), (0..1200).map(|i| i as f32).collect());
    band.write((0, 0), (40, 30), &mut buf).unwrap();
}

#[test]
fn geometry_needs_an_epsg_crs_and_reads_the_config() {
    if !require(&[Pg, Python]) {
        return;
    }
    postgis();
    let dir = tmp();
    let src = dir.path().join("laea.tif");
    custom_crs_raster(&src);
    let root = dir.path().join("staging");
    stage(&src, "laea", &root, &[]);
    assert!(manifest(&root, "laea")["grid"]["epsg"].is_null(), "fixture: the CRS must have no EPSG code");
    let sc = Schema::new("gisep");
    let out = rs(&["load", "--from", s(&root), "--schema", &sc.name, "--geometry"], &[("RUST_LOG", "error")]);
    assert!(!out.status.success());
    one_error_line(
        &String::from_utf8_lossy(&out.stderr),
        &["laea", "--geometry", "EPSG code", "--target-crs EPSG:", "without --geometry"],
    );
    assert_eq!(sc.one_i64(&format!("SELECT count(*) FROM pg_class WHERE oid = to_regclass('{}')", sc.q("laea"))), 0);

    // load.geometry: point in the config does what --geometry does.
    let (src, _) = float_raster(dir.path(), 9);
    stage(&src, "plants", &root, &[]);
    let cfg = dir.path().join("c.yml");
    let yml = |g: &str| {
        format!(
            "datasets:\n  - name: plants\n    path: {}\noutput:\n  uri: {}\ndatabase:\n  schema: {}\nload:\n  geometry: {g}\n",
            s(&src),
            s(&root),
            sc.name
        )
    };
    std::fs::write(&cfg, yml("point")).unwrap();
    rs_ok(&["load", "--config", s(&cfg)]);
    assert_eq!(geom_type(&sc.q("plants")).as_deref(), Some("geometry(Point,4326)"));
    validate_with_schema(&repo_file("schemas/config.schema.json"), &cfg);
    // Unknown kinds are refused, naming the key or the flag.
    std::fs::write(&cfg, yml("polygon")).unwrap();
    let err = rs_fails(&["load", "--config", s(&cfg)]);
    assert!(err.contains("load.geometry") && err.contains("point"), "{err}");
    let err = rs_fails(&["load", "--from", s(&root), "--schema", &sc.name, "--geometry", "polygon"]);
    assert!(err.contains("--geometry") && err.contains("point"), "{err}");
}
