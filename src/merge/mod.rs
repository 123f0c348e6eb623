//! `merge`: several staged datasets on one lattice into one staged dataset with a nullable
//! column per input, window by window, in parallel, resumable.
//!
//! The merged grid is the union of the inputs' extents on their common lattice; an input's
//! cell `(r, c)` is merged cell `(r + row offset, c + col offset)` (integer offsets from the
//! grids, never coordinates). Each merged window reads the input tiles that overlap it,
//! fills one dense f64 buffer per input (NaN = no valid cell), and writes the cells where
//! at least one (`outer`) or every (`inner`) input is valid: memory is one window per
//! worker whatever the rasters' size. Zero is a value like any other.
//!
//! The output is a staged dataset like `convert`'s (dataset.json with `columns`, commit
//! records, `complete` status), so `inspect`, `load`, `verify` and DuckDB (Parquet) or
//! xarray (Zarr: one array per input in one group) work on it.

pub(crate) mod lattice;

use crate::grid::{Grid, Window};
use crate::name::DatasetName;
use crate::stage::lifecycle::{stage_dataset, DatasetWriter, LifecycleError};
pub use crate::stage::manifest::How;
use crate::stage::manifest::{
    settings_digest, Column, Format, Kind, Manifest, Merged, StagedFormat, StagedSettings, Status, TileRecord,
    ZarrVersion, FORMAT_VERSION, SETTINGS_VERSION,
};
use crate::stage::merged::{
    keep_cells, MergedParquetWriter, MergedTile, MergedWriter, MergedZarrWriter, ZarrInputError,
};
use crate::stage::read::{fetch_tile, visit_f64, DecodeError, FetchError, TileShape};
use crate::stage::write_loop::{TileErrorKind, TilesFailed};
use crate::stage::StageError;
use crate::store::{StorageOptions, Store, StoreError};
use crate::test_hooks::test_panic;
use lattice::LatticeError;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Errors of `merge`, each naming the dataset, tile or object.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading or writing staged data failed.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// The inputs are not on one lattice.
    #[error(transparent)]
    Lattice(#[from] LatticeError),
    /// An input that cannot be an array of the merged Zarr group.
    #[error(transparent)]
    ZarrInput(#[from] ZarrInputError),
    /// Fewer than two inputs.
    #[error("merge needs at least two datasets (--datasets a,b or merge.datasets in the config), got {0}")]
    TooFew(usize),
    /// An input listed twice.
    #[error("dataset {0} is listed twice")]
    Duplicate(String),
    /// Nothing staged where an input was expected.
    #[error("{0}: no dataset.json, nothing is staged there; run convert first")]
    NoManifest(String),
    /// An input still converting.
    #[error("dataset {name} at {url} is not complete (status converting): run convert to finish it")]
    NotComplete {
        /// Dataset name.
        name: String,
        /// Dataset folder.
        url: String,
    },
    /// An input that is itself a merge.
    #[error("dataset {name} at {url} is itself a merge: merge its inputs instead")]
    Nested {
        /// Dataset name.
        name: String,
        /// Dataset folder.
        url: String,
    },
    /// An input name that cannot be a column.
    #[error("dataset {0} cannot be a column of the merged table (row_idx, col_idx, x and y are taken): convert it under another --name")]
    Reserved(String),
    /// The output is one of the inputs.
    #[error("the merged dataset {0} would replace its input of the same name: choose another --out or --name")]
    OutIsInput(String),
    /// An unusable option.
    #[error("{0}")]
    Invalid(String),
    /// The output exists from other inputs or settings.
    #[error("{url} was merged {what}; rerun with --overwrite to replace it")]
    Changed {
        /// The merged dataset folder.
        url: String,
        /// What differs.
        what: String,
    },
    /// An input tile cannot be read.
    #[error("dataset {dataset}, tile {tile}: {reason}")]
    Tile {
        /// Input dataset.
        dataset: String,
        /// Tile id.
        tile: String,
        /// What is wrong.
        reason: String,
    },
    /// Some tiles failed; the others are committed.
    #[error(transparent)]
    TilesFailed(#[from] TilesFailed),
}

/// One merge, fully resolved from config and flags.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeJob {
    /// Staging root of the inputs.
    pub from: String,
    /// The inputs, in column order.
    pub datasets: Vec<DatasetName>,
    /// Staging root of the merged dataset.
    pub out: String,
    /// Name of the merged dataset (its folder and table).
    pub name: DatasetName,
    /// Which cells to keep.
    pub how: How,
    /// Output format.
    pub(crate) format: Format,
    /// Zarr version for `Format::Zarr`.
    pub(crate) zarr_version: ZarrVersion,
    /// Window (tile) size of the merged grid; default: the first input's.
    pub(crate) window: Option<usize>,
    /// How the stores talk to an object store.
    pub storage: StorageOptions,
}

pub use crate::stage::lifecycle::RunOptions;

/// What a merge did.
#[derive(Debug, Clone)]
pub struct MergeSummary {
    /// Merged dataset name.
    pub name: String,
    /// Inputs merged.
    pub inputs: usize,
    /// Tiles of the merged dataset.
    pub tiles: usize,
    /// Tiles written by this run.
    pub written: usize,
    /// Rows (cells kept).
    pub rows: u64,
    /// Sum of every non-null value.
    pub value_sum: f64,
    /// Merged grid width x height.
    pub shape: [usize; 2],
    /// Wall time.
    pub seconds: f64,
    /// Merged dataset folder.
    pub url: String,
    /// Whether the merged dataset is complete (a shard's run leaves it converting while
    /// other shards still have tiles to do; `rows` and `value_sum` then count this run's).
    pub complete: bool,
}

/// An input dataset, placed on the merged grid.
pub(crate) struct Input {
    /// Dataset name (its column).
    pub name: String,
    /// Its folder.
    pub(crate) ds: Store,
    /// Its manifest (complete).
    pub(crate) m: Manifest,
    /// `[row, col]` of its cell (0, 0) on the merged grid.
    pub(crate) offset: [i64; 2],
    tiles: HashMap<String, TileRecord>,
    /// The last shard objects read, when the input is a sharded Zarr: a shard serves many
    /// merged windows, and is fetched and checked once for them, not once each.
    recent: std::sync::Mutex<std::collections::VecDeque<(String, bytes::Bytes)>>,
}

/// The merged grid and each input placed on it (`[row, col]` of its cell (0, 0)), for a view
/// over the loaded tables ([`crate::load::view::create_view`]).
///
/// # Errors
/// As [`open_inputs`].
pub fn view_inputs(root: &Store, names: &[DatasetName]) -> Result<(Grid, Vec<crate::load::view::Placed>), MergeError> {
    let (grid, inputs) = open_inputs(root, names)?;
    let placed = names.iter().cloned().zip(inputs.iter().map(|i| i.offset)).collect();
    Ok((grid, placed))
}

/// Compressed bytes of recent shard objects kept per input (at least one shard is kept).
const RECENT_SHARD_BYTES: usize = 256 << 20;

/// Reads the inputs' manifests, checks they are complete and on one lattice, and returns
/// them placed on the merged grid.
///
/// # Errors
/// [`MergeError`] naming the dataset at fault; a lattice mismatch shows the difference.
pub(crate) fn open_inputs(root: &Store, names: &[DatasetName]) -> Result<(Grid, Vec<Input>), MergeError> {
    if names.len() < 2 {
        return Err(MergeError::TooFew(names.len()));
    }
    let mut seen = HashSet::new();
    let mut manifests = Vec::new();
    for n in names {
        if !seen.insert(n.as_str()) {
            return Err(MergeError::Duplicate(n.to_string()));
        }
        if crate::stage::manifest::RESERVED_COLUMNS.contains(&n.as_str()) {
            return Err(MergeError::Reserved(n.to_string()));
        }
        let ds = root.child(n.as_str());
        let m = Manifest::read(&ds)?.ok_or_else(|| MergeError::NoManifest(ds.url().to_string()))?;
        if m.status != Status::Complete {
            return Err(MergeError::NotComplete { name: n.to_string(), url: ds.url().to_string() });
        }
        if m.columns().is_some() {
            return Err(MergeError::Nested { name: n.to_string(), url: ds.url().to_string() });
        }
        manifests.push((n.to_string(), ds, m));
    }
    let label: Vec<&str> = manifests.iter().map(|(n, _, _)| n.as_str()).collect();
    let grids: Vec<&Grid> = manifests.iter().map(|(_, _, m)| &m.grid).collect();
    let (grid, offsets) = lattice::union(&label, &grids)?;
    let inputs = manifests
        .into_iter()
        .zip(offsets)
        .map(|((name, ds, m), offset)| {
            let tiles = m.tiles.iter().map(|t| (t.id.clone(), t.clone())).collect();
            Input { name, ds, m, offset, tiles, recent: Default::default() }
        })
        .collect();
    Ok((grid, inputs))
}

impl Input {
    /// Fills `buf` (the merged window `win`, row-major, pre-filled with NaN) with this
    /// input's valid cells, reading only the input tiles that overlap the window.
    fn fill(&self, win: Window, buf: &mut [f64]) -> Result<(), MergeError> {
        let (or, oc) = (self.offset[0] as usize, self.offset[1] as usize);
        let g = &self.m.grid;
        let (r_lo, r_hi) = (win.row0.max(or), (win.row0 + win.rows).min(or + g.height));
        let (c_lo, c_hi) = (win.col0.max(oc), (win.col0 + win.cols).min(oc + g.width));
        if r_lo >= r_hi || c_lo >= c_hi {
            return Ok(());
        }
        // The same rectangle in the input's own indices.
        let (lr0, lr1, lc0, lc1) = (r_lo - or, r_hi - or, c_lo - oc, c_hi - oc);
        // Input tiles: windows, or shards of a sharded Zarr input.
        let dw = self.m.tile_side();
        for tr in lr0 / dw..=(lr1 - 1) / dw {
            for tc in lc0 / dw..=(lc1 - 1) / dw {
                // Inside the input's grid (the rectangle is), so always a tile of it.
                let Some(id) = self.m.window_at(tr * dw, tc * dw).map(|w| w.tile_id()) else { continue };
                let err = |reason: String| MergeError::Tile { dataset: self.name.clone(), tile: id.clone(), reason };
                let t = self
                    .tiles
                    .get(&id)
                    .ok_or_else(|| err("not listed in dataset.json; convert it again with --overwrite".into()))?;
                let Some(bytes) = self.tile_bytes(t).map_err(|e| match e {
                    FetchError::Store(e) => MergeError::from(e),
                    FetchError::Bad(reason) => err(reason),
                })?
                else {
                    continue;
                };
                let shape = TileShape::of(&self.m, t);
                let within = Window { row0: lr0, col0: lc0, rows: lr1 - lr0, cols: lc1 - lc0 };
                visit_f64(self.m.format.format(), &bytes, &shape, Some(within), |r, c, v| {
                    let (r, c) = (r as usize, c as usize);
                    if r >= lr0 && r < lr1 && c >= lc0 && c < lc1 {
                        buf[(r + or - win.row0) * win.cols + (c + oc - win.col0)] = v;
                    }
                    Ok(())
                })
                .map_err(|e| match e {
                    DecodeError::Bad(s) => err(format!("unreadable tile: {s}")),
                    DecodeError::Sink(e) => err(e.to_string()),
                })?;
            }
        }
        Ok(())
    }

    /// The checked object of tile `t` (`None`: nothing stored); a shard comes from the recent
    /// ones when it is there.
    fn tile_bytes(&self, t: &TileRecord) -> Result<Option<bytes::Bytes>, FetchError> {
        let lock = || self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let sharded = self.m.format.shard().is_some();
        if sharded {
            if let Some((_, b)) = lock().iter().find(|(id, _)| *id == t.id) {
                return Ok(Some(b.clone()));
            }
        }
        // An input is a converted dataset (nested merges are refused): one object a tile.
        let bytes = fetch_tile(&self.ds, &self.m, t)?.and_then(|p| p.into_iter().next());
        if let (true, Some(b)) = (sharded, &bytes) {
            let mut recent = lock();
            recent.push_back((t.id.clone(), b.clone()));
            while recent.len() > 1 && recent.iter().map(|(_, b)| b.len()).sum::<usize>() > RECENT_SHARD_BYTES {
                recent.pop_front();
            }
        }
        Ok(bytes)
    }
}

/// Digest of everything that determines the merged bytes.
fn settings_hash(job: &MergeJob, grid: &Grid, inputs: &[Input], window: usize) -> String {
    let staged = StagedSettings {
        format_version: SETTINGS_VERSION,
        grid,
        window,
        format: job.format,
        zarr_version: job.zarr_version,
    };
    settings_digest(&MergeSettings {
        staged,
        merge: inputs.iter().map(|i| (i.name.as_str(), i.m.settings_hash.as_str(), i.offset)).collect(),
        how: job.how.name(),
    })
}

/// Everything that determines a merged dataset's staged bytes ([`settings_digest`]).
#[derive(serde::Serialize)]
struct MergeSettings<'a> {
    #[serde(flatten)]
    staged: StagedSettings<'a>,
    /// Each input: name, its own settings digest, its offset on the merged grid.
    merge: Vec<(&'a str, &'a str, [i64; 2])>,
    how: &'static str,
}

impl From<MergeError> for TileErrorKind {
    fn from(e: MergeError) -> Self {
        TileErrorKind::Input(Box::new(e))
    }
}

/// The windows of the merged grid, after checking the window (`--window`, or the first
/// input's, which comes from a dataset.json) and the number of tiles against the limits.
fn merged_windows(grid: &Grid, window: usize) -> Result<Vec<Window>, MergeError> {
    use crate::limits::{MAX_WRITE_WINDOW as MAX_WINDOW, MIN_WRITE_WINDOW as MIN_WINDOW};
    if !(MIN_WINDOW..=MAX_WINDOW).contains(&window) {
        return Err(MergeError::Invalid(format!(
            "--window must be between {MIN_WINDOW} and {MAX_WINDOW} cells, got {window}"
        )));
    }
    grid.check_windows(window).map_err(|e| MergeError::Invalid(e.to_string()))?;
    Ok(grid.windows(window))
}

/// The merged dataset's tiles with their cost (cells), for sharding; computed from the
/// inputs' manifests alone, so every shard gets the same units.
///
/// # Errors
/// As [`open_inputs`].
pub fn tile_units(job: &MergeJob) -> Result<Vec<crate::shard::Unit>, MergeError> {
    let root = Store::open_existing(&job.from, &job.storage)?;
    let (grid, inputs) = open_inputs(&root, &job.datasets)?;
    Ok(merged_windows(&grid, job.window.unwrap_or(inputs[0].m.window))?
        .into_iter()
        .map(|w| crate::shard::Unit {
            dataset: job.name.to_string(),
            tile: w.tile_id(),
            cells: w.cells() as u64,
            weight: w.cells() as u64,
        })
        .collect())
}

/// Merges the tiles whose ids are in `only` (all when `None`): one shard's part, which
/// creates dataset.json only if absent and completes it when every tile is committed, as
/// `convert` does (see [`crate::convert::convert_tiles`]).
///
/// # Errors
/// [`MergeError`]: bad inputs stop at once; tile failures are counted and reported after
/// every other tile is done.
pub fn merge_tiles(
    job: &MergeJob,
    opts: &RunOptions,
    only: Option<&HashSet<String>>,
) -> Result<MergeSummary, MergeError> {
    let start = Instant::now();
    let name = job.name.as_str();
    let root = Store::open_existing(&job.from, &job.storage)?;
    let (grid, inputs) = open_inputs(&root, &job.datasets)?;
    let out_root = Store::open_with(&job.out, &job.storage)?;
    let ds = out_root.child(name);
    if inputs.iter().any(|i| i.ds.url() == ds.url()) {
        return Err(MergeError::OutIsInput(name.to_string()));
    }
    let window = job.window.unwrap_or(inputs[0].m.window);
    let windows = merged_windows(&grid, window)?;
    let columns: Vec<Column> = inputs
        .iter()
        .map(|i| {
            let (dtype, nodata) = i.m.value_type();
            Column { name: i.name.clone(), dtype, nodata, source: i.ds.url().to_string(), offset: i.offset }
        })
        .collect();
    let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    let m = Manifest {
        format_version: FORMAT_VERSION,
        name: name.to_string(),
        status: Status::Converting,
        created_by: format!("rasterstage {}", env!("CARGO_PKG_VERSION")),
        kind: Kind::Merge(Merged { how: job.how, from: root.url().to_string(), columns: columns.clone() }),
        grid: grid.clone(),
        lattice_offset: grid.lattice_offset().map(|(r, c)| [r, c]),
        bounds: grid.bounds(),
        window,
        format: match job.format {
            Format::Parquet => StagedFormat::Parquet { geoparquet: None, compat: false },
            Format::Zarr => StagedFormat::Zarr { version: job.zarr_version, shard: None },
        },
        settings_hash: settings_hash(job, &grid, &inputs, window),
        tile_count: windows.len(),
        row_count: 0,
        value_sum: 0.0,
        tiles: Vec::new(),
    };
    // Built before anything is written, so an input a Zarr group cannot hold leaves nothing.
    let writer: Box<dyn MergedWriter> = match job.format {
        Format::Parquet => {
            let grid_json = serde_json::to_string(&json!({
                "dataset": name, "grid": grid, "method": "merge", "how": job.how.name(), "columns": columns,
                "window": window,
            }))
            .expect("grid json");
            Box::new(MergedParquetWriter::new(ds.clone(), name, grid.clone(), columns, grid_json))
        }
        Format::Zarr => Box::new(MergedZarrWriter::new(ds.clone(), &m)?),
    };
    let new_columns = columns_of(&m);
    let writer = MergeWriter { inputs: &inputs, how: job.how, tiles: writer };
    let s = stage_dataset(&ds, m, *opts, only, &writer).map_err(|e| match e {
        LifecycleError::Stage(e) => MergeError::Stage(e),
        LifecycleError::Changed(old) => {
            let what = if columns_of(&old) != new_columns {
                format!(
                    "from other inputs ({} then, {} now)",
                    columns_of(&old).iter().flatten().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "),
                    names.join(", ")
                )
            } else {
                "from changed inputs or with other settings (--how, --window, --format, --zarr-version)".to_string()
            };
            MergeError::Changed { url: ds.url().to_string(), what }
        }
        LifecycleError::TilesFailed(e) => MergeError::TilesFailed(e),
    })?;
    Ok(MergeSummary {
        name: name.to_string(),
        inputs: inputs.len(),
        tiles: s.manifest.tile_count,
        written: s.written,
        rows: s.rows,
        value_sum: s.value_sum,
        shape: [s.manifest.grid.width, s.manifest.grid.height],
        seconds: start.elapsed().as_secs_f64(),
        url: ds.url().to_string(),
        complete: s.complete,
    })
}

/// The columns of a manifest, owned (to compare an existing dataset's with this run's).
fn columns_of(m: &Manifest) -> Option<Vec<Column>> {
    m.columns().map(<[Column]>::to_vec)
}

/// A merged dataset's windows: every input's cells of the window, the cells kept, a tile.
struct MergeWriter<'a> {
    inputs: &'a [Input],
    how: How,
    tiles: Box<dyn MergedWriter>,
}

impl DatasetWriter for MergeWriter<'_> {
    fn begin(&self) -> Result<(), StageError> {
        self.tiles.begin()
    }

    fn write(&self, win: Window) -> Result<TileRecord, TileErrorKind> {
        let mut values: Vec<Vec<f64>> = Vec::with_capacity(self.inputs.len());
        for i in self.inputs {
            let mut buf = vec![f64::NAN; win.cells()];
            i.fill(win, &mut buf)?;
            values.push(buf);
        }
        test_panic(&win.tile_id());
        let keep = keep_cells(&values, win.cells(), self.how);
        Ok(self.tiles.write(&MergedTile { window: win, values: &values, keep: &keep })?)
    }

    fn order(&self, pending: &mut [Window]) {
        // Windows in the same shard of a sharded input one after the other, so the shard is
        // read once for them all (the order of work changes nothing written).
        if let Some(i) = self.inputs.iter().find(|i| i.m.format.shard().is_some()) {
            let side = i.m.tile_side();
            let shard_of = |w: &Window| {
                let (r, c) = (w.row0 as i64 - i.offset[0], w.col0 as i64 - i.offset[1]);
                (r.div_euclid(side as i64), c.div_euclid(side as i64), w.row0, w.col0)
            };
            pending.sort_by_key(shard_of);
        }
    }

    fn finish(&self) -> Result<(), StageError> {
        self.tiles.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::manifest::checksum;

    #[test]
    fn typed_settings_keep_every_existing_digest() {
        let grid = Grid {
            crs_wkt: String::new(),
            epsg: Some(3035),
            x0: 0.0,
            y0: 10.0,
            dx: 1.0,
            dy: -1.0,
            width: 4,
            height: 2,
        };
        let staged = StagedSettings {
            format_version: SETTINGS_VERSION,
            grid: &grid,
            window: 64,
            format: Format::Zarr,
            zarr_version: ZarrVersion::V2,
        };
        let s =
            MergeSettings { staged, merge: vec![("a", "sha256:01", [0, 2]), ("b", "sha256:02", [1, 0])], how: "inner" };
        // As every version before the typed settings computed it.
        let ins: Vec<_> = s.merge.iter().map(|(n, h, o)| json!([n, h, o])).collect();
        let legacy = json!({
            "format_version": s.staged.format_version, "merge": ins, "how": s.how, "grid": s.staged.grid,
            "window": s.staged.window, "format": s.staged.format, "zarr_version": s.staged.zarr_version,
        });
        assert_eq!(settings_digest(&s), checksum(legacy.to_string().as_bytes()));
    }
}
