//! `load --shard K/N`: one shard's tiles of every selected dataset, then the table's
//! primary key and statistics once every shard's tiles are in.
//!
//! The tiles are assigned from the complete manifests alone (weight: rows to copy), so every
//! shard computes the same split; a dataset that is not complete stops the shard before it
//! loads anything, since leaving it out would change the split. Tiles load exactly as in an
//! unsharded load (one transaction per tile, ledger, advisory lock per tile), so shards that
//! overlap (a rerun with another N) still load each tile once.
//!
//! The primary key must be built once, after the last tile: after its own tiles, each shard
//! takes the table's advisory lock (the one `prepare_table` takes), reads the ledger, and if
//! every tile of the manifest is recorded with its checksum, builds the key (if missing),
//! analyses the table and records the dataset in `raster_datasets`. The shard that commits
//! the last tile always sees a complete ledger (its check starts after every commit), and
//! the lock makes a second complete-seeing shard find the key already there. A plain `load`
//! (without `--shard`) afterwards does the same for a dataset whose last shard died.

use super::ledger;
use super::pg::{qualified, reason};
use super::{LoadError, LoadOptions, LoadSummary, PerDataset};
use crate::shard::{self, Shard, Unit};
use crate::stage::Manifest;
use crate::store::Store;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Loads shard `k`'s tiles of the selected datasets; one result per dataset.
///
/// # Errors
/// What stops everything: bad options, a dataset that is not complete (the split would
/// differ between shards), no connection, the schema DDL.
pub fn load_shard(opts: &LoadOptions, k: Shard) -> Result<PerDataset<LoadSummary>, LoadError> {
    super::pg::check_ident("--schema", &opts.schema, false)?;
    super::pg::check_ident("--table-prefix", &opts.table_prefix, true)?;
    let root = Store::open(&opts.root)?;
    let names = super::dataset_names(&root, &opts.datasets)?;
    let mut units = Vec::new();
    for n in &names {
        let m = super::complete_manifest(&root.child(n.as_str()))?;
        units.extend(units_of(n.as_str(), &m));
    }
    let mut mine: HashMap<String, HashSet<String>> = HashMap::new();
    for (ds, tile) in shard::mine(&units, k) {
        mine.entry(ds).or_default().insert(tile);
    }
    let mut client = opts.conn.connect()?;
    super::pg::apply_schema(&mut client, &opts.schema)?;
    let mut out = Vec::new();
    for name in names {
        let only = mine.remove(name.as_str()).unwrap_or_default();
        let r = super::load_dataset_only(opts, &root, &mut client, &name, Some(&only));
        out.push((name.to_string(), r));
    }
    Ok(out)
}

/// The tiles of a staged dataset as units, weighted by rows to copy (at least 1: an empty
/// tile still costs a transaction).
pub fn units_of(name: &str, m: &Manifest) -> Vec<Unit> {
    m.tiles
        .iter()
        .map(|t| Unit {
            dataset: name.to_string(),
            tile: t.id.clone(),
            cells: (t.rows * t.cols) as u64,
            weight: t.row_count.max(1),
        })
        .collect()
}

/// After a shard's tiles: builds the primary key, analyses and records the dataset if the
/// ledger holds every tile of `m` (see the module comment).
#[allow(clippy::too_many_arguments)]
pub(super) fn finish(
    opts: &LoadOptions,
    ds: &Store,
    m: &Manifest,
    table: &str,
    loaded: usize,
    mine: usize,
    rows: u64,
    start: Instant,
) -> Result<LoadSummary, LoadError> {
    let qt = qualified(&opts.schema, table);
    let db = |what: String| move |e: postgres::Error| LoadError::Db { what, reason: reason(&e) };
    // A fresh connection: the one that prepared the table sat idle through the whole load.
    let mut client = opts.conn.connect()?;
    let what = format!("completing {qt}");
    let mut tx = client.transaction().map_err(db(what.clone()))?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&format!("rasterstage:{qt}")])
        .map_err(db(what.clone()))?;
    let recorded = ledger::read(&mut tx, &opts.schema, table).map_err(db(what.clone()))?;
    let done = m
        .tiles
        .iter()
        .filter(|t| recorded.get(&t.id).is_some_and(|r| r.checksum == ledger::wanted_checksum(t)))
        .count();
    let complete = done == m.tiles.len();
    let mut indexed = false;
    if complete {
        let has_pk: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = to_regclass($1) AND indisprimary)",
                &[&qt],
            )
            .map_err(db(what.clone()))?
            .get(0);
        if !opts.no_index && !has_pk {
            tracing::info!("{}: every shard's tiles are loaded; building the primary key of {qt}", m.name);
            tx.batch_execute(&format!("ALTER TABLE {qt} ADD PRIMARY KEY (row_idx, col_idx)"))
                .map_err(db(format!("building the primary key of {qt}")))?;
            indexed = true;
        }
    } else {
        tracing::info!(
            "{}: this shard's tiles are loaded; {done} of {} in {qt}, the last shard builds the primary key",
            m.name,
            m.tiles.len()
        );
    }
    tx.commit().map_err(db(what))?;
    if complete {
        if indexed || loaded > 0 {
            client.batch_execute(&format!("ANALYZE {qt}")).map_err(db(format!("analysing {qt}")))?;
        }
        super::record_dataset(&mut client, opts, ds, m, table)?;
    }
    Ok(LoadSummary {
        name: m.name.clone(),
        table: qt,
        tiles: m.tiles.len(),
        loaded,
        skipped: mine - loaded.min(mine),
        rows,
        total_rows: m.row_count,
        seconds: start.elapsed().as_secs_f64(),
        indexed,
    })
}
