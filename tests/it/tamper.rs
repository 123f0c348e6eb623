//! Hand-edited or damaged staging folders (issue 13): every case is refused with one line
//! naming the file and the field (or the tile), exits non-zero, commits nothing of what is
//! wrong, and leaves the catalogue (`raster_datasets`) exactly as it was.
//!
//! Each test converts the same raster twice, as `keep` (loaded first: its catalogue row and
//! ledger must survive) and as `plants` (then tampered with, and loaded).

use crate::common::*;
use crate::load::{float_raster, rs, rs_fails, rs_ok, stage, LoadSchema};
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, Int32Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A staged root with `keep` loaded and `plants` staged, in a schema of its own.
struct Staged {
    _dir: tempfile::TempDir,
    root: PathBuf,
    sc: Schema,
    /// `raster_datasets` after `keep` loaded.
    catalogue: Vec<String>,
}

impl Staged {
    fn new(tag: &str, seed: u64) -> Staged {
        let dir = tmp();
        let (src, _) = float_raster(dir.path(), seed);
        let root = dir.path().join("st");
        stage(&src, "keep", &root, &[]);
        stage(&src, "plants", &root, &[]);
        let sc = Schema::new(tag);
        rs_ok(&["load", "--from", s(&root), "--dataset", "keep", "--schema", &sc.name]);
        let mut st = Staged { _dir: dir, root, sc, catalogue: Vec::new() };
        st.catalogue = st.catalogue();
        assert_eq!(st.catalogue.len(), 1, "{:?}", st.catalogue);
        st
    }

    fn manifest_path(&self, name: &str) -> PathBuf {
        self.root.join(name).join("dataset.json")
    }

    /// Rewrites `name`'s dataset.json through `f`.
    fn edit(&self, name: &str, f: impl FnOnce(&mut Value)) {
        let mut m = manifest(&self.root, name);
        f(&mut m);
        std::fs::write(self.manifest_path(name), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    }

    /// Every catalogue row as text (all columns but `loaded_at`), sorted.
    fn catalogue(&self) -> Vec<String> {
        client()
            .query(
                &format!(
                    "SELECT concat_ws('|', name, table_name, source, band, epsg, transform::text, width, height, \
                     tile_size, staging_uri, tile_count, row_count, value_sum) FROM {} ORDER BY name",
                    self.sc.q("raster_datasets")
                ),
                &[],
            )
            .unwrap()
            .into_iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// Ledger rows of table `table`.
    fn ledger_of(&self, table: &str) -> i64 {
        self.sc.one_i64(&format!("SELECT count(*) FROM {} WHERE dataset = '{table}'", self.sc.q("raster_tile_loads")))
    }

    /// Rows of `table`, 0 when it does not exist.
    fn rows_of(&self, table: &str) -> i64 {
        let exists: bool =
            client().query_one("SELECT to_regclass($1) IS NOT NULL", &[&self.sc.q(table)]).unwrap().get(0);
        if exists {
            self.sc.count(table)
        } else {
            0
        }
    }

    /// `load --dataset <name>` fails with one line naming the file and every `needles`;
    /// nothing of `<name>` is committed and the catalogue and `keep` are untouched.
    fn load_refused(&self, name: &str, needles: &[&str]) -> String {
        let err = rs_fails(&["load", "--from", s(&self.root), "--dataset", name, "--schema", &self.sc.name]);
        let file = s(&self.manifest_path(name)).to_string();
        let mut all = vec![file.as_str()];
        all.extend_from_slice(needles);
        let line = one_error_line(&err, &all);
        self.untouched(name);
        line
    }

    /// Nothing of `name` in PostgreSQL; `keep`'s rows, ledger and catalogue row as loaded.
    fn untouched(&self, name: &str) {
        assert_eq!(self.rows_of(name), 0, "no row of {name} committed");
        assert_eq!(self.ledger_of(name), 0, "no ledger row of {name} committed");
        assert_eq!(self.ledger_of("keep"), 20, "keep's ledger intact");
        assert_eq!(self.catalogue(), self.catalogue, "the catalogue is unchanged");
    }
}

/// Every file under `dir`, or none when it does not exist.
fn files_under_or_none(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    if dir.exists() {
        files_under(dir)
    } else {
        Vec::new()
    }
}

/// Sum of the tiles' row counts and value sums, as dataset.json totals them.
fn retotal(m: &mut Value) {
    let tiles = m["tiles"].as_array().unwrap();
    let rows: u64 = tiles.iter().map(|t| t["row_count"].as_u64().unwrap()).sum();
    let sum: f64 = tiles.iter().map(|t| t["value_sum"].as_f64().unwrap()).sum();
    m["row_count"] = json!(rows);
    m["value_sum"] = json!(sum);
}

#[test]
fn complete_dataset_json_listing_10_of_20_tiles() {
    if !require(&[Pg]) {
        return;
    }
    let st = Staged::new("tp_half", 21);
    st.edit("plants", |m| {
        m["tiles"].as_array_mut().unwrap().truncate(10);
        retotal(m);
    });
    st.load_refused("plants", &["invalid tiles", "lists 10 of the 20 tiles", "complete"]);
}

#[test]
fn tile_listed_twice() {
    if !require(&[Pg]) {
        return;
    }
    let st = Staged::new("tp_twice", 22);
    st.edit("plants", |m| {
        let tiles = m["tiles"].as_array_mut().unwrap();
        tiles[6] = tiles[5].clone();
        retotal(m);
    });
    st.load_refused("plants", &["invalid tiles[6]", "twice"]);
}

#[test]
fn one_tile_id_with_two_windows() {
    if !require(&[Pg]) {
        return;
    }
    let st = Staged::new("tp_twoid", 23);
    st.edit("plants", |m| {
        let tiles = m["tiles"].as_array_mut().unwrap();
        tiles[6]["id"] = tiles[5]["id"].clone();
    });
    st.load_refused("plants", &["invalid tiles[6].id", "row0 and col0 make it"]);
}

#[test]
fn negative_row_count() {
    if !require(&[Pg]) {
        return;
    }
    let st = Staged::new("tp_neg", 24);
    st.edit("plants", |m| m["row_count"] = json!(-1));
    st.load_refused("plants", &["not a valid rasterstage manifest", "field row_count", "-1"]);
}

#[test]
fn dataset_value_sum_of_1e308() {
    if !require(&[Pg]) {
        return;
    }
    let st = Staged::new("tp_sum", 25);
    st.edit("plants", |m| m["value_sum"] = json!(1e308));
    st.load_refused("plants", &["invalid value_sum", "1e308", "the tiles' values sum to"]);
}

#[test]
fn folder_whose_dataset_json_names_another_dataset() {
    if !require(&[Pg]) {
        return;
    }
    let st = Staged::new("tp_other", 26);
    let other = st.root.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(st.manifest_path("keep"), other.join("dataset.json")).unwrap();
    // keep's catalogue row (staging_uri, totals) must not be overwritten by "other".
    st.load_refused("other", &["invalid name", "\"keep\"", "\"other\""]);
    // Every dataset of the root: the others load, this one is refused, keep stays as it was.
    let err = rs_fails(&["load", "--from", s(&st.root), "--schema", &st.sc.name]);
    assert!(err.contains("invalid name") && err.contains("1 of 3 datasets failed"), "{err}");
    assert_eq!(st.catalogue().len(), 2, "keep and plants");
    assert!(st.catalogue().contains(&st.catalogue[0]), "keep's row unchanged");
    assert_eq!(st.rows_of("other"), 0);
}

#[test]
fn tile_row0_of_2_pow_32() {
    if !require(&[Pg]) {
        return;
    }
    let st = Staged::new("tp_row0", 27);
    st.edit("plants", |m| m["tiles"][5]["window"]["row0"] = json!(1u64 << 32));
    st.load_refused("plants", &["invalid tiles[5].window.row0", "4294967296"]);
}

#[test]
fn grid_dx_of_zero() {
    if !require(&[Pg]) {
        return;
    }
    let st = Staged::new("tp_dx", 28);
    st.edit("plants", |m| m["grid"]["dx"] = json!(0.0));
    st.load_refused("plants", &["invalid grid.dx", "finite and positive"]);
}

#[test]
fn window_of_zero_in_load_verify_and_inspect() {
    if !require(&[Pg]) {
        return;
    }
    let st = Staged::new("tp_win0", 29);
    st.edit("plants", |m| m["window"] = json!(0));
    st.load_refused("plants", &["invalid window", "is 0"]);
    let err = rs_fails(&["verify", "--from", s(&st.root), "--dataset", "plants", "--schema", &st.sc.name]);
    one_error_line(&err, &[s(&st.manifest_path("plants")), "invalid window", "is 0"]);
    // inspect reads through the same validation.
    let err = fails(&["inspect", s(&st.root)]);
    one_error_line(&err, &[s(&st.manifest_path("plants")), "invalid window", "is 0"]);
    st.untouched("plants");
}

#[test]
fn window_of_2_pow_31() {
    if !require(&[Pg]) {
        return;
    }
    let st = Staged::new("tp_win31", 30);
    st.edit("plants", |m| m["window"] = json!(1u64 << 31));
    st.load_refused("plants", &["invalid window", "2147483648"]);
}

#[test]
fn grid_of_2_pow_40_cells_a_side_in_merge_and_load() {
    if !require(&[Pg]) {
        return;
    }
    let st = Staged::new("tp_huge", 31);
    st.edit("plants", |m| {
        m["grid"]["width"] = json!(1u64 << 40);
        m["grid"]["height"] = json!(1u64 << 40);
    });
    let out = st.root.parent().unwrap().join("merged");
    let t = Instant::now();
    let err = fails(&["merge", "--from", s(&st.root), "--datasets", "keep,plants", "--out", s(&out), "-q"]);
    assert!(t.elapsed() < Duration::from_secs(30), "merge took {:?}", t.elapsed());
    one_error_line(&err, &[s(&st.manifest_path("plants")), "invalid grid.width", "1099511627776"]);
    assert!(files_under_or_none(&out).iter().all(|(p, _)| !p.ends_with("dataset.json")), "nothing merged");
    st.load_refused("plants", &["invalid grid.width", "1099511627776"]);
}

#[test]
fn nan_value_sum_in_a_tile_record() {
    if !require(&[Pg]) {
        return;
    }
    let st = Staged::new("tp_nan", 32);
    st.edit("plants", |m| {
        m["tiles"][7]["value_sum"] = json!("NaN");
        m["value_sum"] = json!("NaN");
    });
    st.load_refused("plants", &["invalid tiles[7].value_sum", "NaN"]);
}

#[test]
fn dataset_json_larger_than_the_limit_is_refused_unread() {
    if !require(&[Pg]) {
        return;
    }
    let st = Staged::new("tp_big", 33);
    // Sparse: the size is what is checked, before a byte is read.
    let f = std::fs::OpenOptions::new().write(true).open(st.manifest_path("plants")).unwrap();
    f.set_len(rasterstage::limits::MAX_MANIFEST_BYTES + 1).unwrap();
    st.load_refused("plants", &["1073741825 bytes", "more than the 1073741824"]);
}

/// Rewrites Parquet tile `id` of `plants` with its `row_idx`/`col_idx` columns changed by
/// `f` (values kept, so the count and the sum still match the record), and records the new
/// object's checksum and size in dataset.json, so only the cells themselves are wrong.
fn rewrite_cells(st: &Staged, id: &str, f: impl FnOnce(&mut [i32], &mut [i32])) {
    let path = st.root.join(format!("plants/tiles/{id}.parquet"));
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(std::fs::read(&path).unwrap())).unwrap();
    let schema = builder.schema().clone();
    let kv = builder.metadata().file_metadata().key_value_metadata().cloned().unwrap();
    let grid_json = kv.iter().find(|k| k.key == rasterstage::stage::parquet::GRID_KEY).unwrap().value.clone().unwrap();
    let batches: Vec<RecordBatch> = builder.build().unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 1, "a small tile is one batch");
    let b = &batches[0];
    let mut rows = b.column(0).as_primitive::<Int32Type>().values().to_vec();
    let mut cols = b.column(1).as_primitive::<Int32Type>().values().to_vec();
    f(&mut rows, &mut cols);
    let mut columns: Vec<ArrayRef> = b.columns().to_vec();
    columns[0] = Arc::new(Int32Array::from(rows));
    columns[1] = Arc::new(Int32Array::from(cols));
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let props = rasterstage::stage::parquet::writer_props(&grid_json, &schema, false);
    let mut w = ArrowWriter::try_new(Vec::new(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    let bytes = w.into_inner().unwrap();
    std::fs::write(&path, &bytes).unwrap();
    st.edit("plants", |m| {
        let t = m["tiles"].as_array_mut().unwrap().iter_mut().find(|t| t["id"] == id).unwrap();
        t["checksum"] = json!(rasterstage::stage::manifest::checksum(&bytes));
        t["bytes"] = json!(bytes.len());
    });
}

/// Loading `plants` fails on tile `id` alone, naming it and `what`: the 19 others load,
/// nothing of that tile is committed, and the catalogue is untouched.
fn tile_refused(st: &Staged, id: &str, what: &str) {
    let out = rs(&["load", "--from", s(&st.root), "--dataset", "plants", "--schema", &st.sc.name], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    let tile_line = err.lines().find(|l| l.contains(id)).unwrap_or_else(|| panic!("{id} not named: {err}"));
    assert!(tile_line.contains(what), "{tile_line}");
    let last = err.lines().rev().find(|l| l.starts_with("error:")).unwrap();
    assert!(last.contains("1 of 20 tiles failed"), "{last}");
    assert_eq!(st.ledger_of("plants"), 19, "every other tile committed");
    let t = manifest(&st.root, "plants")["tiles"].as_array().unwrap().iter().find(|t| t["id"] == id).unwrap().clone();
    let w = &t["window"];
    let (r0, c0) = (w["row0"].as_i64().unwrap(), w["col0"].as_i64().unwrap());
    let (r1, c1) = (r0 + w["rows"].as_i64().unwrap(), c0 + w["cols"].as_i64().unwrap());
    let in_window = st.sc.one_i64(&format!(
        "SELECT count(*) FROM {} WHERE row_idx >= {r0} AND row_idx < {r1} AND col_idx >= {c0} AND col_idx < {c1}",
        st.sc.q("plants")
    ));
    assert_eq!(in_window, 0, "nothing of the bad tile committed");
    assert_eq!(
        st.sc.one_i64(&format!(
            "SELECT count(*) FROM {} WHERE dataset = 'plants' AND tile_id = '{id}'",
            st.sc.q("raster_tile_loads")
        )),
        0
    );
    assert_eq!(st.catalogue(), st.catalogue, "no catalogue row for a dataset that did not load");
    assert_eq!(st.ledger_of("keep"), 20);
}

#[test]
fn parquet_tile_with_a_duplicated_cell() {
    if !require(&[Pg]) {
        return;
    }
    let st = Staged::new("tp_dup", 34);
    rewrite_cells(&st, "r32_c64", |rows, cols| {
        // The second cell takes the first one's place: same count, same values, same sum.
        rows[1] = rows[0];
        cols[1] = cols[0];
    });
    tile_refused(&st, "r32_c64", "appears twice");
}

#[test]
fn parquet_tile_with_a_cell_outside_its_window() {
    if !require(&[Pg]) {
        return;
    }
    let st = Staged::new("tp_out", 35);
    rewrite_cells(&st, "r32_c64", |_, cols| {
        // The last cell moves one column past the window (still after the others).
        *cols.last_mut().unwrap() = 96;
    });
    tile_refused(&st, "r32_c64", "outside the tile's window");
}

#[test]
fn parquet_tile_out_of_row_major_order() {
    if !require(&[Pg]) {
        return;
    }
    let st = Staged::new("tp_order", 36);
    rewrite_cells(&st, "r32_c64", |rows, cols| {
        rows.swap(0, 1);
        cols.swap(0, 1);
    });
    tile_refused(&st, "r32_c64", "out of row-major order");
}

/// Replacing a tampered folder is what `--overwrite` is for: convert refuses to resume it,
/// and the advice every message gives works.
#[test]
fn overwrite_replaces_a_tampered_folder() {
    if !require(&[Pg]) {
        return;
    }
    let st = Staged::new("tp_over", 37);
    st.edit("plants", |m| m["grid"]["dx"] = json!(0.0));
    let src = st.root.parent().unwrap().join("f37.tif");
    let err = fails(&["convert", s(&src), "--name", "plants", "--out", s(&st.root), "--window", "32", "-q"]);
    one_error_line(&err, &["invalid grid.dx", "--overwrite"]);
    stage(&src, "plants", &st.root, &["--overwrite"]);
    rs_ok(&["load", "--from", s(&st.root), "--dataset", "plants", "--schema", &st.sc.name]);
    rs_ok(&["verify", "--from", s(&st.root), "--dataset", "plants", "--schema", &st.sc.name]);
}
