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
//! analyses the table and records the dataset in `raster_datasets` (`complete_table`, the
//! same step as a plain load's). The shard that commits the last tile always sees a complete
//! ledger (its check starts after every commit), and the lock makes a second complete-seeing
//! shard find the key already there. A plain `load` (without `--shard`) afterwards does the
//! same for a dataset whose last shard died.

use super::{LoadError, LoadOptions, LoadSummary, PerDataset};
use crate::name::DatasetName;
use crate::shard::{self, Shard, Unit};
use crate::store::Store;
use std::collections::{HashMap, HashSet};

/// Loads shard `k`'s tiles of the selected datasets; one result per dataset.
///
/// # Errors
/// What stops everything: bad options, a dataset that is not complete (the split would
/// differ between shards), no connection, the schema DDL.
pub fn load_shard(opts: &LoadOptions, k: Shard) -> Result<PerDataset<LoadSummary>, LoadError> {
    super::load_tiles(opts, Some(k))
}

/// Shard `k`'s tiles of each dataset of `names`, by dataset name.
///
/// # Errors
/// What reading a manifest returns, or [`LoadError::NotComplete`].
pub(super) fn tiles_of(
    root: &Store,
    names: &[DatasetName],
    k: Shard,
) -> Result<HashMap<String, HashSet<String>>, LoadError> {
    let mut units = Vec::new();
    for n in names {
        let m = super::complete_manifest(&root.child(n.as_str()))?;
        // Weighted by rows to copy (at least 1: an empty tile still costs a transaction).
        units.extend(m.tiles.iter().map(|t| Unit {
            dataset: n.to_string(),
            tile: t.id.clone(),
            cells: t.window.cells() as u64,
            weight: t.row_count.max(1),
        }));
    }
    let mut mine: HashMap<String, HashSet<String>> = HashMap::new();
    for (ds, tile) in shard::mine(&units, k) {
        mine.entry(ds).or_default().insert(tile);
    }
    Ok(mine)
}
