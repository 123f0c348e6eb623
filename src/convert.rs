//! `convert`: windows -> read -> resample -> write -> commit, in parallel, resumable.
//!
//! A tile is committed (its record written) only after its object is complete, and
//! `dataset.json` says `complete` only after every tile is committed. A rerun after a crash
//! redoes exactly the uncommitted tiles; the output is deterministic, so it ends identical to
//! an uninterrupted run.

use crate::dtype::DataType;
use crate::grid::{Grid, Window};
use crate::name::DatasetName;
use crate::resample::Method;
use crate::source::{Fingerprint, Source, SourceError};
use crate::stage::geoparquet::GeoEncoding;
use crate::stage::lifecycle::{stage_dataset, worker_pool, DatasetWriter, LifecycleError};
use crate::stage::manifest::{
    settings_digest, Format, Kind, Manifest, Raster, StagedFormat, StagedSettings, Status, ZarrVersion, FORMAT_VERSION,
    SETTINGS_VERSION,
};
use crate::stage::parquet::ParquetOptions;
use crate::stage::write_loop::{TileErrorKind, TilesFailed};
use crate::stage::{writer, StageError, TileRecord, TileWriter};
use crate::store::{StorageOptions, Store, StoreError};
use crate::target_grid::{plan, GridRequest, Plan, PlanError};
use crate::test_hooks::test_panic;
use crate::tile::{Tile, TileValues};
use crate::window::compute_tile;
use serde::Serialize;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

/// Errors that stop a conversion; each names the dataset, file or object.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Opening the source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The target grid cannot be built.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Writing staged data failed.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// Opening the output failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output exists with other settings or from a changed source.
    #[error("{url} was converted {what}; rerun with --overwrite to replace it")]
    Changed {
        /// The dataset folder.
        url: String,
        /// What differs.
        what: String,
    },
    /// A method is needed but none was chosen.
    #[error("{0}: resampling needs a method: pass --method (sum for counts, average for continuous values, mode for categories) or set method/data_type in the config{1}")]
    NoMethod(String, String),
    /// A Zarr dataset named like one of the group's own variables.
    #[error("dataset {0}: a Zarr group already has a variable of that name (x, y, spatial_ref); convert it under another --name")]
    ZarrName(String),
    /// A dataset cannot be planned for sharding.
    #[error("planning {0}: {1}")]
    Planning(String, Box<ConvertError>),
    /// A shard size that is not for this format or too large (the CLI checks it first).
    #[error("dataset {0}: --zarr-shard {1} needs --format zarr with --zarr-version 3 and a shard side (K x window) of at most {max} cells", max = crate::limits::MAX_WRITE_WINDOW)]
    ZarrShard(String, usize),
    /// Some tiles failed; the others are committed.
    #[error(transparent)]
    TilesFailed(#[from] TilesFailed),
}

/// One dataset to convert, fully resolved from config and flags.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertJob {
    /// Dataset name.
    pub name: DatasetName,
    /// Source raster path or URL.
    pub(crate) source: String,
    /// Band number (1-based).
    pub(crate) band: usize,
    /// Nodata override.
    pub(crate) nodata: Option<f64>,
    /// Resampling method; `None` is fine only for passthrough.
    pub(crate) method: Option<Method>,
    pub(crate) grid: GridRequest,
    /// Window size in target cells.
    pub(crate) window: usize,
    pub(crate) format: Format,
    pub(crate) zarr_version: ZarrVersion,
    /// Sharded Zarr v3: `K` x `K` windows per shard object, one unit of work (`--zarr-shard`).
    pub(crate) zarr_shard: Option<usize>,
    /// How Parquet tiles are written (GeoParquet, compatible encodings).
    pub(crate) parquet: ParquetOptions,
    /// Staging root URL.
    pub(crate) out: String,
    /// How the staging store (and GDAL's `/vsis3/` reads) talk to an object store.
    pub(crate) storage: StorageOptions,
}

pub use crate::stage::lifecycle::RunOptions;

/// What a conversion did.
#[derive(Debug, Clone)]
pub struct ConvertSummary {
    /// Dataset name.
    pub name: String,
    /// "passthrough" or the method.
    pub method: String,
    /// Tiles in the dataset.
    pub tiles: usize,
    /// Tiles computed in this run.
    pub written: usize,
    /// Valid cells staged.
    pub rows: u64,
    /// Sum of valid values.
    pub value_sum: f64,
    /// Wall time.
    pub seconds: f64,
    /// URL of the dataset folder.
    pub url: String,
    /// Whether the target grid is the source grid as it is (a passthrough of every cell).
    pub source_grid: bool,
    /// Whether the dataset is complete (a shard's run leaves it converting while other
    /// shards still have tiles to do; `rows` and `value_sum` then count this run's tiles).
    pub complete: bool,
}

/// Everything that determines a converted dataset's staged bytes ([`settings_digest`]).
#[derive(Serialize)]
struct ConvertSettings<'a> {
    #[serde(flatten)]
    staged: StagedSettings<'a>,
    source: SourceSettings<'a>,
    method: &'a str,
    dtype: DataType,
    nodata: Option<String>,
    // Present only when set: datasets staged before these options keep their digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    geoparquet: Option<GeoEncoding>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    parquet_compat: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    zarr_shard: Option<usize>,
}

/// The source's part of [`ConvertSettings`].
#[derive(Serialize)]
struct SourceSettings<'a> {
    band: usize,
    dtype: DataType,
    nodata: Option<String>,
    grid: &'a Grid,
    fingerprint: &'a Fingerprint,
}

/// Digest of everything that determines a dataset's staged bytes.
fn settings_hash(job: &ConvertJob, src: &crate::source::SourceInfo, p: &Plan) -> String {
    settings_digest(&ConvertSettings {
        staged: StagedSettings {
            format_version: SETTINGS_VERSION,
            grid: &p.target,
            window: job.window,
            format: job.format,
            zarr_version: job.zarr_version,
        },
        source: SourceSettings {
            band: src.band,
            dtype: src.dtype,
            nodata: src.nodata.map(|v| v.to_string()),
            grid: &src.grid,
            fingerprint: &src.fingerprint,
        },
        method: p.method_label(),
        dtype: p.dtype,
        nodata: p.nodata.map(|v| v.to_string()),
        geoparquet: job.parquet.geoparquet,
        parquet_compat: job.parquet.compat,
        zarr_shard: job.zarr_shard,
    })
}

/// Human description of what differs between an existing manifest and this run.
fn differences(old: &Manifest, new: &Manifest) -> String {
    let mut d = Vec::new();
    // A converted dataset is rerun over a converted one (a merge's settings digest differs).
    if let (Kind::Raster(old_r), Kind::Raster(new_r)) = (&old.kind, &new.kind) {
        let (o, n) = (&old_r.source, &new_r.source);
        if o.path != n.path {
            d.push(format!("from another source ({} then, {} now)", o.path, n.path));
        } else if o.fingerprint != n.fingerprint {
            d.push(format!("from an earlier version of {} (its size or modification time changed)", n.path));
        }
        if o.grid != n.grid || o.band != n.band || o.dtype != n.dtype {
            d.push("from a source with another grid, band or type".to_string());
        }
    }
    if old.method_label() != new.method_label() {
        d.push(format!("with method {} (now {})", old.method_label(), new.method_label()));
    }
    if old.grid != new.grid {
        d.push("on another target grid".to_string());
    }
    let (of, nf) = (old.format, new.format);
    if of.format() != nf.format() || of.zarr_version() != nf.zarr_version() || of.shard() != nf.shard() {
        let shard = |k: Option<usize>| k.map(|k| format!(" sharded {k}x{k}")).unwrap_or_default();
        d.push(
            format!("as {:?}{} (now {:?}{})", of.format(), shard(of.shard()), nf.format(), shard(nf.shard()))
                .to_lowercase(),
        );
    }
    let parquet = |f: StagedFormat| match f {
        StagedFormat::Parquet { geoparquet, compat } => (geoparquet, compat),
        StagedFormat::Zarr { .. } => (None, false),
    };
    if parquet(of) != parquet(nf) {
        d.push("with other Parquet options (--geoparquet, --parquet-compat)".to_string());
    }
    if old.window != new.window {
        d.push(format!("with window {} (now {})", old.window, new.window));
    }
    if d.is_empty() {
        d.push("with other settings".to_string());
    }
    d.join(", ")
}

/// Cells along a tile's side: the window, or a shard's K windows (a sharded Zarr's unit of
/// work, and of a scale-out split, is the shard object).
fn tile_side(job: &ConvertJob) -> usize {
    job.window * job.zarr_shard.unwrap_or(1)
}

/// The tiles of `job` with their cost, for sharding: target cells, weighted by the source
/// cells each target cell reads (same CRS: the ratio of cell areas; another CRS: of cell
/// counts). A pure function of the source's grid and the settings, so every process of a
/// sharded run computes the same units.
///
/// # Errors
/// [`ConvertError::Source`], [`ConvertError::Plan`].
pub(crate) fn tile_units(job: &ConvertJob) -> Result<Vec<crate::shard::Unit>, ConvertError> {
    crate::source::configure_gdal_http(&job.storage);
    let src = Source::open(&job.source, job.band, job.nodata)?;
    let plan = plan(&src.info, &job.grid, job.method.unwrap_or(Method::Nearest))?;
    let (s, t) = (&src.info.grid, &plan.target);
    let ratio = if matches!(plan.kind, crate::target_grid::Kind::Warp) {
        (s.width * s.height) as f64 / (t.width * t.height).max(1) as f64
    } else {
        (t.dx * t.dy).abs() / (s.dx * s.dy).abs()
    };
    Ok(t.windows(tile_side(job))
        .into_iter()
        .map(|w| crate::shard::Unit {
            dataset: job.name.to_string(),
            tile: w.tile_id(),
            cells: w.cells() as u64,
            weight: ((w.cells() as f64 * ratio).ceil() as u64).max(1),
        })
        .collect())
}

/// Every tile of every job with its cost, in job order (what `plan` and every shard of a
/// sharded `convert` split).
///
/// # Errors
/// [`ConvertError::Planning`] naming the dataset that cannot be opened or planned.
pub fn jobs_units(jobs: &[ConvertJob]) -> Result<Vec<crate::shard::Unit>, ConvertError> {
    let units =
        jobs.iter().map(|job| tile_units(job).map_err(|e| ConvertError::Planning(job.name.to_string(), Box::new(e))));
    Ok(units.collect::<Result<Vec<_>, _>>()?.concat())
}

/// Shard `k`'s tile ids, by dataset name: its share of all tiles of all `jobs` together.
///
/// # Errors
/// As [`jobs_units`].
pub fn shard_tiles(
    jobs: &[ConvertJob],
    k: crate::shard::Shard,
) -> Result<HashMap<String, HashSet<String>>, ConvertError> {
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for (ds, tile) in crate::shard::mine(&jobs_units(jobs)?, k) {
        out.entry(ds).or_default().insert(tile);
    }
    Ok(out)
}

/// Converts the tiles of `job` whose ids are in `only` (all tiles when `None`): one shard's
/// part of a dataset. A shard creates `dataset.json` only if there is none, never rewrites
/// it as `converting`, and completes it when it finds every tile committed
/// ([`crate::stage::finalize::complete_if_done`]); see docs/scale-out.md.
///
/// # Errors
/// [`ConvertError`]: open/config failures stop at once; tile failures are counted and
/// reported after every other tile is done.
pub fn convert_tiles(
    job: &ConvertJob,
    opts: &RunOptions,
    only: Option<&HashSet<String>>,
) -> Result<ConvertSummary, ConvertError> {
    let start = Instant::now();
    let name = job.name.as_str();
    if job.format == Format::Zarr && matches!(name, "x" | "y" | "spatial_ref") {
        return Err(ConvertError::ZarrName(name.to_string()));
    }
    if let Some(k) = job.zarr_shard {
        let side = k.saturating_mul(job.window);
        if job.format != Format::Zarr
            || job.zarr_version != ZarrVersion::V3
            || k == 0
            || side > crate::limits::MAX_WRITE_WINDOW
        {
            return Err(ConvertError::ZarrShard(name.to_string(), k));
        }
    }
    crate::source::configure_gdal_http(&job.storage);
    let src = Source::open(&job.source, job.band, job.nodata)?;
    let plan = plan(&src.info, &job.grid, job.method.unwrap_or(Method::Nearest))?;
    if job.method.is_none() && !plan.is_passthrough() {
        // When -tap alone moved the grid off the source's lattice, --no-align is the other fix.
        let unaligned = GridRequest { align: false, ..job.grid.clone() };
        let hint = if job.grid.align
            && crate::target_grid::plan(&src.info, &unaligned, Method::Nearest).is_ok_and(|p| p.is_passthrough())
        {
            ", or pass --no-align to copy the grid as it is (the source's origin is not on a multiple of its cell size, so -tap alignment would resample it)"
        } else {
            ""
        };
        return Err(ConvertError::NoMethod(job.source.clone(), hint.to_string()));
    }
    if matches!(job.method, Some(Method::Sum | Method::Average)) && !plan.is_passthrough() {
        if let Some(why) = src.categorical() {
            tracing::warn!(
                "{name}: {} looks categorical ({why}), but --method {} adds its codes up: for categories use --method mode (data_type: categorical_data in a config)",
                job.source,
                plan.method.name()
            );
        }
    }
    let gdal_warps = matches!(plan.kind, crate::target_grid::Kind::Warp) && plan.method != Method::Sum;
    if let (Some(mask), false) = (src.mask(), gdal_warps) {
        tracing::warn!(
            "{name}: {} has {mask}, which {} does not read: its masked cells are staged as values (GDAL's warper and gdalwarp leave them out); give them a nodata value first",
            job.source,
            if plan.is_passthrough() { "passthrough".to_string() } else { format!("--method {}", plan.method.name()) }
        );
    }
    let source_grid = matches!(plan.kind, crate::target_grid::Kind::Passthrough { dr: 0, dc: 0 })
        && plan.target.width == src.info.grid.width
        && plan.target.height == src.info.grid.height;
    let (t, s) = (plan.target.bounds(), src.info.grid.bounds());
    if !matches!(plan.kind, crate::target_grid::Kind::Warp)
        && (t.minx >= s.maxx || t.maxx <= s.minx || t.miny >= s.maxy || t.maxy <= s.miny)
    {
        tracing::warn!("{name}: the target bounds {t} do not overlap {} {s}: every cell will be nodata", job.source);
    }
    tracing::debug!(
        "{name}: {} {}x{} -> {}x{} ({}), window {}",
        plan.method_label(),
        src.info.grid.width,
        src.info.grid.height,
        plan.target.width,
        plan.target.height,
        plan.dtype.name(),
        job.window
    );
    let root = Store::open_with(&job.out, &job.storage)?;
    let ds = root.child(name);
    let m = staged_manifest(job, &src.info, &plan);
    // One GDAL dataset per worker thread (Datasets are Send but not Sync); rayon's map_init
    // would open one per job split instead.
    let writer = WindowWriter {
        job,
        plan: &plan,
        tiles: writer(ds.clone(), &m, grid_json(job, &plan)),
        sources: (0..opts.threads.max(1)).map(|_| Mutex::new(None)).collect(),
    };
    drop(src);
    let new = m.clone();
    let s = stage_dataset(&ds, m, *opts, only, &writer).map_err(|e| match e {
        LifecycleError::Stage(e) => ConvertError::Stage(e),
        LifecycleError::Changed(old) => {
            ConvertError::Changed { url: ds.url().to_string(), what: differences(&old, &new) }
        }
        LifecycleError::TilesFailed(e) => ConvertError::TilesFailed(e),
    })?;
    Ok(ConvertSummary {
        name: name.to_string(),
        method: s.manifest.method_label().to_string(),
        tiles: s.manifest.tile_count,
        written: s.written,
        rows: s.rows,
        value_sum: s.value_sum,
        seconds: start.elapsed().as_secs_f64(),
        url: ds.url().to_string(),
        source_grid,
        complete: s.complete,
    })
}

/// The `converting` manifest of `job`, planned as `plan` from a source described by `info`.
fn staged_manifest(job: &ConvertJob, info: &crate::source::SourceInfo, plan: &Plan) -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        name: job.name.to_string(),
        status: Status::Converting,
        created_by: format!("rasterstage {}", env!("CARGO_PKG_VERSION")),
        kind: Kind::Raster(Raster {
            source: info.clone(),
            method: plan.resampling(),
            dtype: plan.dtype,
            nodata: plan.nodata,
        }),
        grid: plan.target.clone(),
        lattice_offset: plan.target.lattice_offset().map(|(r, c)| [r, c]),
        bounds: plan.target.bounds(),
        window: job.window,
        format: match job.format {
            Format::Parquet => StagedFormat::Parquet { geoparquet: job.parquet.geoparquet, compat: job.parquet.compat },
            Format::Zarr => StagedFormat::Zarr { version: job.zarr_version, shard: job.zarr_shard },
        },
        settings_hash: settings_hash(job, info, plan),
        tile_count: plan.target.windows(tile_side(job)).len(),
        row_count: 0,
        value_sum: 0.0,
        tiles: Vec::new(),
    }
}

/// The grid description the tile writers embed in every tile's metadata.
fn grid_json(job: &ConvertJob, plan: &Plan) -> String {
    serde_json::to_string(&json!({
        "dataset": job.name.as_str(), "grid": plan.target, "method": plan.method_label(),
        "dtype": plan.dtype, "nodata": plan.nodata.map(|v| v.to_string()), "window": job.window,
    }))
    .expect("grid json")
}

/// What [`parquet_floor`] wrote.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloorSummary {
    /// Windows written (tiles, empty windows included).
    pub windows: usize,
    /// Rows written.
    pub rows: u64,
}

/// Benchmark support, not an API: the Parquet floor of `scripts/bench-growth.sh`
/// (`examples/parquet_floor.rs`). Writes the Parquet tiles `convert` writes for `job` (its
/// format is taken as Parquet) through the same plan, tile layout, writer and store puts,
/// window by window on `threads` threads as `convert` does, but takes each window's values
/// from `values([row0, col0, rows, cols])` (Float32, row-major) instead of reading and
/// resampling the source, and commits nothing: no commit records, no `dataset.json`, no
/// resume. What is left is the cost of turning rows into tiles, so a change to the writer
/// moves this floor and `convert` alike.
///
/// # Errors
/// [`ConvertError`]: opening the source (its header alone is read), planning, the store, or
/// encoding a tile.
///
/// # Panics
/// When `values` returns a vector of another length than the window's cells.
#[doc(hidden)]
pub fn parquet_floor(
    job: &ConvertJob,
    threads: usize,
    values: &(dyn Fn([usize; 4]) -> Vec<f32> + Sync),
) -> Result<FloorSummary, ConvertError> {
    use rayon::prelude::*;
    let job = ConvertJob { format: Format::Parquet, zarr_shard: None, ..job.clone() };
    let info = Source::open(&job.source, job.band, job.nodata)?.info;
    let plan = plan(&info, &job.grid, job.method.unwrap_or(Method::Nearest))?;
    let tiles = writer(
        Store::open_with(&job.out, &job.storage)?.child(job.name.as_str()),
        &staged_manifest(&job, &info, &plan),
        grid_json(&job, &plan),
    );
    let windows = plan.target.windows(tile_side(&job));
    let pool = worker_pool(threads, windows.len());
    tiles.begin()?;
    let rows = pool.install(|| {
        windows
            .par_iter()
            .map(|w| {
                let v = values([w.row0, w.col0, w.rows, w.cols]);
                assert_eq!(v.len(), w.cells(), "parquet_floor: values of window {}", w.tile_id());
                let tile = Tile { window: *w, values: TileValues::Float32(v), nodata: plan.nodata };
                Ok(tiles.write(&tile)?.row_count)
            })
            .collect::<Result<Vec<u64>, StageError>>()
    })?;
    tiles.finish()?;
    Ok(FloorSummary { windows: windows.len(), rows: rows.iter().sum() })
}

/// A converted raster's windows: read the source, resample, write a tile.
struct WindowWriter<'a> {
    job: &'a ConvertJob,
    plan: &'a Plan,
    tiles: Box<dyn TileWriter>,
    /// One source per worker thread, opened on its first tile.
    sources: Vec<Mutex<Option<Source>>>,
}

impl DatasetWriter for WindowWriter<'_> {
    fn begin(&self) -> Result<(), StageError> {
        self.tiles.begin()
    }

    fn write(&self, tile: Window) -> Result<TileRecord, TileErrorKind> {
        // A tile is one window, or a shard's windows computed one after the other.
        self.tiles.write_tile(tile, &mut |win| {
            let slot = &self.sources[rayon::current_thread_index().unwrap_or(0) % self.sources.len()];
            let mut slot = slot.lock().unwrap_or_else(|poisoned| {
                // A tile panicked while reading: its GDAL dataset may be mid-read, so it is
                // dropped and this tile opens a fresh one.
                let mut guard = poisoned.into_inner();
                *guard = None;
                slot.clear_poison();
                guard
            });
            let src = match slot.as_mut() {
                Some(src) => src,
                None => slot.insert(Source::open(&self.job.source, self.job.band, self.job.nodata)?),
            };
            test_panic(&win.tile_id());
            Ok(compute_tile(src, self.plan, win)?)
        })
    }

    fn finish(&self) -> Result<(), StageError> {
        self.tiles.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The digest as every version before the typed settings computed it.
    fn legacy(s: &ConvertSettings<'_>) -> String {
        let mut doc = json!({
            "format_version": s.staged.format_version,
            "source": {"band": s.source.band, "dtype": s.source.dtype, "nodata": s.source.nodata,
                       "grid": s.source.grid, "fingerprint": s.source.fingerprint},
            "grid": s.staged.grid, "method": s.method, "dtype": s.dtype,
            "nodata": s.nodata, "window": s.staged.window, "format": s.staged.format,
            "zarr_version": s.staged.zarr_version,
        });
        if let Some(enc) = s.geoparquet {
            doc["geoparquet"] = json!(enc);
        }
        if s.parquet_compat {
            doc["parquet_compat"] = json!(true);
        }
        crate::stage::manifest::checksum(doc.to_string().as_bytes())
    }

    #[test]
    fn typed_settings_keep_every_existing_digest() {
        let grid = Grid {
            crs_wkt: "GEOGCS[\"WGS 84\"]".into(),
            epsg: Some(4326),
            x0: -10.0,
            y0: 60.0,
            dx: 0.05,
            dy: -0.05,
            width: 7,
            height: 3,
        };
        let fp = Fingerprint { size: 1234, mtime: 1_700_000_000, mtime_ns: 5 };
        for (geo, compat, nodata) in [
            (None, false, None),
            (Some(GeoEncoding::Wkb), true, Some(-9999.0)),
            (Some(GeoEncoding::Point), false, Some(f64::NAN)),
        ] {
            let s = ConvertSettings {
                staged: StagedSettings {
                    format_version: SETTINGS_VERSION,
                    grid: &grid,
                    window: 256,
                    format: Format::Parquet,
                    zarr_version: ZarrVersion::V3,
                },
                source: SourceSettings {
                    band: 2,
                    dtype: DataType::Int16,
                    nodata: nodata.map(|v: f64| v.to_string()),
                    grid: &grid,
                    fingerprint: &fp,
                },
                method: "sum",
                dtype: DataType::Float64,
                nodata: Some("NaN".into()),
                geoparquet: geo,
                parquet_compat: compat,
                zarr_shard: None,
            };
            assert_eq!(settings_digest(&s), legacy(&s));
        }
    }
}
