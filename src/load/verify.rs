//! `verify` (staged vs loaded, tile by tile) and the loaded-tile counts `inspect` shows.

use super::pg::{exists, qualified, ConnSpec};
use super::{complete_manifest, dataset_names, db, ledger, table_name, LoadError};
use crate::name::DatasetName;
use crate::stage::manifest::same_sum;
use crate::stage::Manifest;
use crate::store::Store;
use std::collections::{BTreeMap, HashMap};

/// One tile whose rows in PostgreSQL differ from what dataset.json records.
#[derive(Debug, Clone, PartialEq)]
pub struct TileDiff {
    /// Tile id, or `outside any tile` for rows beyond the grid's windows.
    pub tile: String,
    /// Rows according to dataset.json.
    pub staged_rows: u64,
    /// Rows in PostgreSQL.
    pub loaded_rows: u64,
    /// Value sum according to dataset.json.
    pub staged_sum: f64,
    /// Value sum in PostgreSQL.
    pub loaded_sum: f64,
}

/// The comparison of one dataset.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// Dataset name.
    pub(crate) name: String,
    /// `"schema"."table"`.
    pub table: String,
    /// Tiles compared.
    pub tiles: usize,
    /// Tiles that differ.
    pub diffs: Vec<TileDiff>,
}

impl VerifyReport {
    /// The error to exit with when anything differs.
    pub fn error(&self) -> Option<LoadError> {
        (!self.diffs.is_empty()).then(|| LoadError::Differs {
            dataset: self.name.clone(),
            differing: self.diffs.len(),
            total: self.tiles,
        })
    }
}

/// Compares one dataset: row count and value sum per tile window in PostgreSQL vs dataset.json.
///
/// # Errors
/// [`LoadError::NoTable`], [`LoadError::Db`], or what reading the manifest returns.
pub(crate) fn verify_dataset(
    client: &mut postgres::Client,
    root: &Store,
    name: &DatasetName,
    schema: &str,
    prefix: &str,
) -> Result<VerifyReport, LoadError> {
    let m = complete_manifest(&root.child(name.as_str()))?;
    let qt = qualified(schema, &table_name(prefix, name)?);
    if !exists(client, &qt).map_err(db(format!("looking up {qt}")))? {
        return Err(LoadError::NoTable(qt));
    }
    // The manifest is validated: the window is 1..=MAX_WINDOW and every index fits int4.
    let int4 = |v: usize| {
        i32::try_from(v)
            .map_err(|_| LoadError::Db { what: format!("verifying {qt}"), reason: format!("{v} exceeds int4") })
    };
    // Tiles: windows, or shards of a sharded Zarr dataset.
    let win = int4(m.tile_side())?;
    let sum = super::pg::row_sum_sql(&m);
    // Windows are aligned to multiples of the window size, so integer division finds a row's
    // tile; one pass over the table serves every tile.
    let rows = client
        .query(
            &format!(
                "SELECT row_idx / $1, col_idx / $1, count(*), sum({sum}) FROM {qt} \
                 WHERE row_idx >= 0 AND col_idx >= 0 GROUP BY 1, 2 \
                 UNION ALL SELECT -1, -1, count(*), sum({sum}) FROM {qt} WHERE row_idx < 0 OR col_idx < 0"
            ),
            &[&win],
        )
        .map_err(db(format!("counting rows of {qt}")))?;
    let mut loaded: HashMap<(i32, i32), (u64, f64)> = rows
        .into_iter()
        .map(|r| {
            let n = u64::try_from(r.get::<_, i64>(2)).unwrap_or(0);
            ((r.get(0), r.get(1)), (n, r.get::<_, Option<f64>>(3).unwrap_or(0.0)))
        })
        .collect();
    let mut diffs = Vec::new();
    for t in &m.tiles {
        let key = (int4(t.window.row0 / m.tile_side())?, int4(t.window.col0 / m.tile_side())?);
        let (n, sum) = loaded.remove(&key).unwrap_or((0, 0.0));
        if n != t.row_count || !same_sum(sum, t.value_sum) {
            diffs.push(TileDiff {
                tile: t.id.clone(),
                staged_rows: t.row_count,
                loaded_rows: n,
                staged_sum: t.value_sum,
                loaded_sum: sum,
            });
        }
    }
    let (extra_rows, extra_sum) = loaded.values().fold((0u64, 0.0f64), |(n, s), (rn, rs)| (n + rn, s + rs));
    if extra_rows > 0 {
        diffs.push(TileDiff {
            tile: "outside any tile".into(),
            staged_rows: 0,
            loaded_rows: extra_rows,
            staged_sum: 0.0,
            loaded_sum: extra_sum,
        });
    }
    if diffs.is_empty() {
        super::geometry::verify(client, &qt, &m.name)?;
    }
    Ok(VerifyReport { name: m.name.clone(), table: qt, tiles: m.tiles.len(), diffs })
}

/// Verifies the selected datasets (`only`, or every dataset under `root`).
///
/// # Errors
/// What stops everything: no connection, no datasets. Per-dataset errors are in the list.
pub fn verify(
    root: &Store,
    only: &[String],
    conn: &ConnSpec,
    schema: &str,
    prefix: &str,
) -> Result<super::PerDataset<VerifyReport>, LoadError> {
    super::pg::check_ident("--schema", schema, false)?;
    super::pg::check_ident("--table-prefix", prefix, true)?;
    let names = dataset_names(root, only)?;
    let mut client = conn.connect()?;
    Ok(names.into_iter().map(|n| (n.to_string(), verify_dataset(&mut client, root, &n, schema, prefix))).collect())
}

/// For each staged dataset under `root` (by name): tiles loaded with their current checksum,
/// and tiles staged.
///
/// # Errors
/// [`LoadError::Connect`], [`LoadError::Db`], or a store error.
pub fn loaded_tiles(
    root: &Store,
    conn: &ConnSpec,
    schema: &str,
    prefix: &str,
) -> Result<BTreeMap<String, (usize, usize)>, LoadError> {
    super::pg::check_ident("--schema", schema, false)?;
    super::pg::check_ident("--table-prefix", prefix, true)?;
    let mut client = conn.connect()?;
    let mut out = BTreeMap::new();
    for folder in root.folders()? {
        let Ok(name) = DatasetName::new(&folder) else { continue };
        let Some(m) = Manifest::read(&root.child(&folder))? else { continue };
        let table = table_name(prefix, &name)?;
        let recorded =
            ledger::read(&mut client, schema, &table).map_err(db(format!("reading the ledger of {table}")))?;
        out.insert(m.name.clone(), (m.tiles.iter().filter(|t| ledger::is_loaded(&recorded, t)).count(), m.tile_count));
    }
    Ok(out)
}
