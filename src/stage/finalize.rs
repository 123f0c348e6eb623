//! Completing a dataset whose tiles were written by several processes (shards).
//!
//! No process ever rewrites a shared file with partial knowledge: each tile is committed by
//! its own record (`_tiles/<id>.json`), and `dataset.json` goes from `converting` to
//! `complete` only in [`complete_if_done`], which lists the records and writes the complete
//! manifest only when every window of the grid has one. Its content is a pure function of
//! the settings and the records (sorted), so two processes that complete the dataset at the
//! same moment write the same bytes: there is no lost update to lose. Every shard calls it
//! after its own tiles, so whichever commits the last tile completes the dataset (a commit
//! is visible to every later list on local disk and on S3); `rasterstage finalize` calls it
//! too, for a shard that died between its last commit and that check.

use super::manifest::{self, Format, Manifest, Status};
use super::zarr::ZarrGroup;
use super::StageError;
use crate::store::Store;

/// Where a dataset stands after [`complete_if_done`].
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// Every tile is committed and `dataset.json` says so (written now or before).
    Complete {
        /// Tiles.
        tiles: usize,
        /// Valid cells over all tiles.
        rows: u64,
        /// Sum of valid values.
        value_sum: f64,
        /// Whether this call wrote the complete manifest (false: it already was complete).
        written: bool,
    },
    /// Some tiles are not committed yet (other shards are still at work, or died).
    Missing {
        /// Committed tiles.
        committed: usize,
        /// All tiles.
        total: usize,
    },
}

impl Completion {
    /// The completion of the complete manifest `m`.
    fn of(m: &Manifest, written: bool) -> Completion {
        Completion::Complete { tiles: m.tile_count, rows: m.row_count, value_sum: m.value_sum, written }
    }
}

/// Writes the complete `dataset.json` of dataset folder `ds` if every window of `m`'s grid
/// has a commit record; `m` is the converting manifest (settings, no tiles). A dataset that
/// is already complete with the same settings is not rewritten, so a slow shard can never
/// turn it back to `converting` or touch it at all. For Zarr, the array metadata and the
/// consolidated metadata are (re)written just before the manifest, from the settings alone,
/// so every process writes the same bytes.
///
/// # Errors
/// [`StageError`] naming the object.
pub(crate) fn complete_if_done(ds: &Store, m: &Manifest) -> Result<Completion, StageError> {
    let windows = m.grid.windows(m.tile_side());
    // One LIST first: every shard but the last stops here, without reading any record.
    let ids = manifest::committed_ids(ds)?;
    let listed = windows.iter().filter(|w| ids.contains(&w.tile_id())).count();
    if listed < windows.len() {
        return Ok(Completion::Missing { committed: listed, total: windows.len() });
    }
    // Only a record that is exactly one window of this grid (position, size, object key)
    // completes its tile; any other is foreign, and its tile stays missing.
    let records: Vec<manifest::TileRecord> = manifest::committed(ds)?
        .into_iter()
        .filter(|r| {
            let url = || ds.url_of(&super::keys::commit_record(&r.id));
            m.check_tile(r).inspect_err(|v| tracing::warn!("ignoring commit record {}: {v}", url())).is_ok()
        })
        .collect();
    if records.len() < windows.len() {
        return Ok(Completion::Missing { committed: records.len(), total: windows.len() });
    }
    let mut done = m.clone();
    done.status = Status::Complete;
    done.set_tiles(records)?;
    // What readers will refuse is never written.
    done.validate(None).map_err(|v| v.at(&ds.url_of(manifest::MANIFEST), done.redo()))?;
    if let Some(old) = Manifest::read(ds)? {
        if old.status == Status::Complete && old.settings_hash == m.settings_hash {
            return Ok(Completion::of(&done, false));
        }
    }
    if m.format.format() == Format::Zarr {
        let g = ZarrGroup::of_manifest(ds.clone(), m);
        g.begin()?;
        g.finish()?;
    }
    done.write(ds)?;
    Ok(Completion::of(&done, true))
}

/// `rasterstage finalize` for one dataset folder: completes it if every tile is committed.
/// A complete Zarr dataset gets its consolidated metadata rewritten (same bytes), which
/// repairs a completing process killed between the array and consolidated metadata writes.
/// `None` when there is no `dataset.json`.
///
/// # Errors
/// [`StageError`] naming the object.
pub fn finalize(ds: &Store) -> Result<Option<Completion>, StageError> {
    let Some(m) = Manifest::read(ds)? else { return Ok(None) };
    if m.status == Status::Complete {
        if m.format.format() == Format::Zarr {
            ZarrGroup::of_manifest(ds.clone(), &m).finish()?;
        }
        return Ok(Some(Completion::of(&m, false)));
    }
    complete_if_done(ds, &Manifest { tiles: Vec::new(), row_count: 0, value_sum: 0.0, ..m }).map(Some)
}
