//! One staged dataset's life, for `convert` and `merge` alike: from its settings (a
//! `converting` manifest) to its summary.
//!
//! The steps, in order: an existing `dataset.json` with other settings is refused (unless
//! `--overwrite`, which deletes the folder), one already complete is reported as it is; the
//! manifest is created (a shard never rewrites one that is there); the committed tiles are the
//! resume set; the pending windows are written and committed in parallel; then the dataset is
//! completed, by this run or, for a shard, by whichever shard commits the last tile. What a
//! window becomes is the [`DatasetWriter`]'s business.

use super::finalize::{complete_if_done, Completion};
use super::manifest::{self, exact_sum, Manifest, Status, TileRecord};
use super::write_loop::{write_and_commit, TileErrorKind, TilesFailed};
use super::StageError;
use crate::grid::Window;
use crate::progress::Progress;
use crate::store::Store;
use std::collections::{HashMap, HashSet};

/// How one staged dataset is written: set up once, write windows from many threads, finish
/// once. `convert` and `merge` each implement it.
pub(crate) trait DatasetWriter: Sync {
    /// Writes what does not depend on tiles (Zarr metadata, coordinates). Idempotent.
    ///
    /// # Errors
    /// [`StageError`] naming the object.
    fn begin(&self) -> Result<(), StageError>;

    /// Computes window `win` and writes it completely; returns its (not yet committed) record.
    ///
    /// # Errors
    /// [`TileErrorKind`]: what went wrong with this tile alone.
    fn write(&self, win: Window) -> Result<TileRecord, TileErrorKind>;

    /// Orders the pending windows for writing (the order changes nothing written). By
    /// default they stay in grid order.
    fn order(&self, _pending: &mut [Window]) {}

    /// Runs once every tile is committed (consolidated Zarr metadata).
    ///
    /// # Errors
    /// [`StageError`] naming the object.
    fn finish(&self) -> Result<(), StageError>;
}

/// How to run `convert` or `merge`.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Worker threads.
    pub threads: usize,
    /// Replace an existing dataset with other settings.
    pub overwrite: bool,
    /// No progress display.
    pub quiet: bool,
}

/// What a run did.
#[derive(Debug, Clone)]
pub(crate) struct Staged {
    /// The dataset's manifest: the complete one, the converting one of an incomplete shard
    /// run, or the one found complete before.
    pub(crate) manifest: Manifest,
    /// Tiles written by this run.
    pub(crate) written: usize,
    /// Valid cells (rows): of the dataset, or of this shard's tiles while it is incomplete.
    pub(crate) rows: u64,
    /// Sum of valid values, counted like `rows`.
    pub(crate) value_sum: f64,
    /// Whether the dataset is complete.
    pub(crate) complete: bool,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LifecycleError {
    /// Reading or writing staged data failed.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// The dataset exists with other settings (the old manifest; the caller says how it
    /// differs and names the flag).
    #[error("the dataset was staged with other settings")]
    Changed(Box<Manifest>),
    /// Some tiles failed; the others are committed.
    #[error(transparent)]
    TilesFailed(TilesFailed),
}

/// The pool that writes `tiles` tiles with `threads` workers: no more workers than tiles, as
/// each may hold a source of its own.
pub(crate) fn worker_pool(threads: usize, tiles: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads.clamp(1, tiles.max(1))).build().expect("thread pool")
}

/// Stages the windows of `m`'s grid whose tile ids are in `only` (all when `None`: a shard's
/// part otherwise) into dataset folder `ds` with `writer`, resuming from the committed tiles.
/// A shard creates `dataset.json` only if there is none, never rewrites it as `converting`,
/// and completes it when it finds every tile committed ([`complete_if_done`]).
///
/// # Errors
/// [`LifecycleError`]: settings that differ stop at once; tile failures are counted and
/// reported after every other tile is done.
pub(crate) fn stage_dataset(
    ds: &Store,
    mut m: Manifest,
    opts: RunOptions,
    only: Option<&HashSet<String>>,
    writer: &dyn DatasetWriter,
) -> Result<Staged, LifecycleError> {
    let name = m.name.clone();
    match Manifest::read_for_rerun(ds, opts.overwrite)? {
        Some(old) if old.settings_hash != m.settings_hash && !opts.overwrite => {
            return Err(LifecycleError::Changed(Box::new(old)));
        }
        Some(old) if old.status == Status::Complete && !opts.overwrite => {
            tracing::info!("{name}: already complete in {}, nothing to do", ds.url());
            let (rows, value_sum) = (old.row_count, old.value_sum);
            return Ok(Staged { manifest: old, written: 0, rows, value_sum, complete: true });
        }
        Some(_) if opts.overwrite => ds.delete_prefix("").map_err(StageError::from)?,
        _ => {}
    }
    // Only created, unless replacing: a shard, or another run of the same command, may have
    // completed the dataset since it was read above, and rewriting it as converting would
    // undo that. A manifest that is there already has these settings (checked above).
    if opts.overwrite {
        m.write(ds)?;
    } else {
        m.create(ds)?;
    }
    // Shards leave the Zarr metadata to whichever completes the dataset (complete_if_done
    // writes it with the consolidated metadata): one written now could land after that.
    if only.is_none() {
        writer.begin()?;
    }

    let windows = m.grid.windows(m.tile_side());
    let by_window: HashMap<String, Window> = windows.iter().map(|w| (w.tile_id(), *w)).collect();
    // A shard needs only which tiles are committed (one LIST, not a GET per record): with
    // many shards, reading every record in every shard would dominate the S3 requests.
    let mut done: Vec<TileRecord> = match only {
        Some(_) => Vec::new(),
        None => manifest::committed(ds)?.into_iter().filter(|r| by_window.get(&r.id) == Some(&r.window)).collect(),
    };
    let done_ids: HashSet<String> = match only {
        Some(_) => manifest::committed_ids(ds)?,
        None => done.iter().map(|r| r.id.clone()).collect(),
    };
    let mut pending: Vec<Window> = windows
        .iter()
        .filter(|w| !done_ids.contains(&w.tile_id()) && only.is_none_or(|o| o.contains(&w.tile_id())))
        .copied()
        .collect();
    writer.order(&mut pending);
    if !done_ids.is_empty() {
        tracing::info!("{name}: resuming, {} of {} tiles already committed", done_ids.len(), windows.len());
    }

    let progress = Progress::new(&name, windows.len() as u64, done_ids.len() as u64, opts.quiet);
    let pool = worker_pool(opts.threads, pending.len());
    let written = pending.len();
    let (new, failures) = pool.install(|| write_and_commit(&name, ds, &pending, &progress, |w| writer.write(w)));
    done.extend(new);
    let failed = failures.len();
    if let Some(first) = failures.into_iter().next() {
        let first = Box::new(first);
        return Err(LifecycleError::TilesFailed(TilesFailed { dataset: name, failed, total: written, first }));
    }
    if let Some(only) = only {
        return Ok(match complete_if_done(ds, &m)? {
            Completion::Complete { rows, value_sum, .. } => {
                Staged { manifest: m, written, rows, value_sum, complete: true }
            }
            Completion::Missing { committed, total } => {
                tracing::info!(
                    "{name}: this shard's tiles are done; {committed} of {total} committed, the last shard to finish (or `rasterstage finalize`) completes the dataset"
                );
                let mine: Vec<&TileRecord> = done.iter().filter(|r| only.contains(&r.id)).collect();
                let rows = mine.iter().map(|r| r.row_count).sum();
                let value_sum = exact_sum(mine.iter().map(|r| r.value_sum));
                Staged { manifest: m, written, rows, value_sum, complete: false }
            }
        });
    }
    m.set_tiles(done)?;
    writer.finish()?;
    m.status = Status::Complete;
    m.write(ds)?;
    let (rows, value_sum) = (m.row_count, m.value_sum);
    Ok(Staged { manifest: m, written, rows, value_sum, complete: true })
}
