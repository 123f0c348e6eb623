//! `dataset.json`: what a staged dataset is (grid, source, method) and which tiles are
//! committed, with their row counts, value sums and checksums.
//!
//! A tile is committed by writing its record to `_tiles/<tile id>.json` after the tile itself
//! is complete. Records are separate objects so that workers (and, later, machines) never
//! rewrite one shared file; `dataset.json` gathers them when the conversion completes, and
//! only a `complete` dataset is trusted by `load`.

/// Returns `Err(Invalid)` for `field`, its reason formatted from the rest, when `bad` holds.
macro_rules! refuse_if {
    ($bad:expr, $field:expr, $($reason:tt)+) => {
        if $bad {
            return invalid($field, format!($($reason)+));
        }
    };
}

mod v1;

use super::geoparquet::GeoEncoding;
use super::StageError;
use crate::dtype::DataType;
use crate::grid::{Bounds, Grid, Window};
use crate::limits::{MAX_GRID_CELLS, MAX_GRID_SIDE, MAX_MANIFEST_BYTES, MAX_TILES, MAX_WINDOW, MAX_ZARR_SHARD};
use crate::name::DatasetName;
use crate::resample::Resampling;
use crate::source::SourceInfo;
use crate::store::Store;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use super::format::{Format, ZarrVersion};
pub(crate) use super::keys::{COMMITS, MANIFEST};
/// Version of the staging layout written; bumped on incompatible changes. Version 1 (flat,
/// before the typed manifest) is still read ([`v1`]).
pub(crate) const FORMAT_VERSION: u32 = 2;
/// The `format_version` inside every settings digest: the version the digest came with,
/// kept when the layout's version moves on, so that a dataset staged before keeps its digest
/// (and a rerun resumes it instead of refusing it as changed).
pub(crate) const SETTINGS_VERSION: u32 = 1;
/// Most value columns of a merged dataset: a PostgreSQL table holds at most 1600 columns,
/// four of which are `row_idx`, `col_idx`, `x` and `y`.
pub(crate) const MAX_COLUMNS: usize = 1596;
/// Column names a merged dataset's value column cannot take (the key columns).
pub(crate) const RESERVED_COLUMNS: [&str; 4] = ["row_idx", "col_idx", "x", "y"];

/// What the settings digest of every staged dataset holds besides its own settings (they
/// flatten it in): [`SETTINGS_VERSION`], the grid, the window, the format and Zarr version.
#[derive(Serialize)]
pub(crate) struct StagedSettings<'a> {
    /// [`SETTINGS_VERSION`].
    pub(crate) format_version: u32,
    /// The dataset's grid.
    pub(crate) grid: &'a Grid,
    /// The window.
    pub(crate) window: usize,
    /// The format.
    pub(crate) format: Format,
    /// The Zarr version (also for Parquet: the flag's value, as every digest had it).
    pub(crate) zarr_version: ZarrVersion,
}

/// `sha256:<hex>` of `settings` as canonical JSON ([`crate::json::canonical`]: keys sorted at
/// every level), the bytes every earlier version hashed, so datasets staged before keep
/// their digest.
pub(crate) fn settings_digest(settings: &impl Serialize) -> String {
    checksum(crate::json::canonical(&serde_json::to_value(settings).expect("settings serialise")).as_bytes())
}

/// Which cells a merge keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum How {
    /// Cells where at least one input is valid (FULL OUTER JOIN).
    #[default]
    #[serde(alias = "full")]
    #[value(alias = "full")]
    Outer,
    /// Cells where every input is valid (INNER JOIN).
    Inner,
}

impl How {
    /// `outer` or `inner`.
    pub fn name(self) -> &'static str {
        match self {
            How::Outer => "outer",
            How::Inner => "inner",
        }
    }
}

/// Whether every tile is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Tiles are still being written; readers must not trust the dataset yet.
    Converting,
    /// Every tile is committed and listed.
    Complete,
}

/// One committed tile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TileRecord {
    /// `r<row0>_c<col0>`.
    pub(crate) id: String,
    /// The tile's cells on the dataset's grid.
    pub(crate) window: Window,
    /// Object key relative to the dataset folder; `None` when the window has no valid cell
    /// (nothing is written for it). In a merged Zarr dataset, the first column's chunk: the
    /// tile is that window's chunk of every column ([`Manifest::tile_keys`]).
    pub(crate) path: Option<String>,
    /// Valid cells (Parquet rows; merged datasets: cells kept).
    pub(crate) row_count: u64,
    /// Sum of the valid values, in row-major order (merged datasets: of every non-null
    /// value, row by row, columns in order).
    #[serde(with = "json_f64")]
    pub(crate) value_sum: f64,
    /// `sha256:<hex>` of the object's bytes (of a merged Zarr window: of its chunks,
    /// concatenated in column order).
    pub(crate) checksum: Option<String>,
    /// Size of the object in bytes (of a merged Zarr window: of all its chunks).
    pub(crate) bytes: u64,
}

/// One value column of a dataset written by `merge`: the values of one input dataset,
/// nullable (NULL where that dataset has no valid cell).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Column {
    /// Column name: the input dataset's name.
    pub(crate) name: String,
    /// Cell type of the input dataset, kept unchanged.
    pub(crate) dtype: DataType,
    /// Nodata of the input dataset (the Zarr fill value; Parquet and PostgreSQL hold NULL).
    #[serde(with = "json_opt_f64")]
    pub(crate) nodata: Option<f64>,
    /// The input dataset's folder.
    pub(crate) source: String,
    /// `[row, col]` of the input's cell (0, 0) on this dataset's grid: input cell (r, c) is
    /// cell (r + row, c + col) here.
    pub(crate) offset: [i64; 2],
}

impl TileRecord {
    /// The record of window `w` with its row count and value sum, before any object is
    /// written (a window without valid cells stays like this: nothing is stored for it).
    pub(crate) fn new(w: Window, row_count: u64, value_sum: f64) -> TileRecord {
        TileRecord { id: w.tile_id(), window: w, path: None, row_count, value_sum, checksum: None, bytes: 0 }
    }

    /// Stores the tile's objects `(key, bytes)` in `ds` (several for a merged Zarr window: one
    /// chunk per column), each atomically, in order; records the first key as the path, and
    /// the size and checksum of them all, concatenated in order ([`Manifest::tile_keys`] gives
    /// the keys back).
    ///
    /// # Errors
    /// [`StageError::Store`].
    pub(crate) fn store(&mut self, ds: &Store, parts: Vec<(String, Vec<u8>)>) -> Result<(), StageError> {
        self.checksum = Some(checksum_parts(parts.iter().map(|(_, b)| b.as_slice())));
        self.bytes = parts.iter().map(|(_, b)| b.len() as u64).sum();
        let mut first = None;
        for (key, bytes) in parts {
            ds.put(&key, Bytes::from(bytes))?;
            first.get_or_insert(key);
        }
        self.path = first;
        Ok(())
    }
}

/// What a staged dataset holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum Kind {
    /// One band of a raster, converted (`convert`): one `value` column.
    Raster(Raster),
    /// Converted datasets on one lattice, merged (`merge`): one nullable column each.
    Merge(Merged),
}

/// A converted raster: where its cells come from and how they were made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raster {
    /// The source band.
    pub(crate) source: SourceInfo,
    /// Passthrough (cells copied), or the resampling method.
    pub(crate) method: Resampling,
    /// Output cell type.
    pub(crate) dtype: DataType,
    /// Output nodata (`"NaN"` for NaN).
    #[serde(with = "json_opt_f64")]
    pub(crate) nodata: Option<f64>,
}

/// A merge: its inputs, one value column each, and which cells it kept. A tile's
/// `value_sum` is the sum of every non-null value of every column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Merged {
    /// Which cells were kept.
    pub(crate) how: How,
    /// The staging root the inputs were read from.
    pub(crate) from: String,
    /// The value columns, one per input, in order.
    pub(crate) columns: Vec<Column>,
}

impl Merged {
    /// `merge (<how>) of <inputs> from <root>`: what stands for a source where one is shown
    /// (the catalogue's `source`).
    pub(crate) fn description(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        format!("merge ({}) of {} from {}", self.how.name(), names.join(", "), self.from)
    }
}

/// The staging format of a dataset, with what only that format has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum StagedFormat {
    /// One Parquet file per tile under `tiles/`.
    Parquet {
        /// GeoParquet tiles: the encoding of their point geometry column (absent for plain
        /// tiles).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        geoparquet: Option<GeoEncoding>,
        /// Tiles written with only the encodings every reader decodes (`--parquet-compat`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        compat: bool,
    },
    /// One Zarr group under `<name>.zarr/`.
    Zarr {
        /// Zarr format version.
        version: ZarrVersion,
        /// Sharded Zarr v3 (`--zarr-shard K`): K x K windows (inner chunks) per shard object,
        /// through the `sharding_indexed` codec. A tile is then one shard: K x window cells a
        /// side, one object, one commit record (absent: one chunk per window).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard: Option<usize>,
    },
}

impl StagedFormat {
    /// Parquet or Zarr.
    pub(crate) fn format(self) -> Format {
        match self {
            StagedFormat::Parquet { .. } => Format::Parquet,
            StagedFormat::Zarr { .. } => Format::Zarr,
        }
    }

    /// The Zarr version of a Zarr dataset.
    pub(crate) fn zarr_version(self) -> Option<ZarrVersion> {
        match self {
            StagedFormat::Zarr { version, .. } => Some(version),
            StagedFormat::Parquet { .. } => None,
        }
    }

    /// Windows per shard side of a sharded Zarr dataset.
    pub(crate) fn shard(self) -> Option<usize> {
        match self {
            StagedFormat::Zarr { shard, .. } => shard,
            StagedFormat::Parquet { .. } => None,
        }
    }

    /// The geometry encoding of GeoParquet tiles.
    pub(crate) fn geoparquet(self) -> Option<GeoEncoding> {
        match self {
            StagedFormat::Parquet { geoparquet, .. } => geoparquet,
            StagedFormat::Zarr { .. } => None,
        }
    }
}

/// The dataset manifest (`dataset.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    /// [`FORMAT_VERSION`].
    pub(crate) format_version: u32,
    /// Dataset name (a safe SQL identifier).
    pub(crate) name: String,
    /// Converting or complete.
    pub(crate) status: Status,
    /// Tool and version that wrote it.
    pub(crate) created_by: String,
    /// A converted raster or a merge.
    pub(crate) kind: Kind,
    /// The target grid.
    pub(crate) grid: Grid,
    /// Index of target cell (0, 0) on the lattice of multiples of the resolution from the CRS
    /// origin (`[row, col]`), when the grid is on it. Datasets with offsets join by subtracting
    /// them.
    pub(crate) lattice_offset: Option<[i64; 2]>,
    /// Target bounds.
    pub(crate) bounds: Bounds,
    /// Window (tile) size in target cells.
    pub(crate) window: usize,
    /// Staging format.
    pub(crate) format: StagedFormat,
    /// Digest of everything that determines the output; a rerun with another one is refused.
    pub(crate) settings_hash: String,
    /// Number of windows.
    pub(crate) tile_count: usize,
    /// Valid cells over all tiles.
    pub(crate) row_count: u64,
    /// Sum of valid values over all tiles.
    #[serde(with = "json_f64")]
    pub(crate) value_sum: f64,
    /// Committed tiles, sorted by id position (row, then column).
    pub(crate) tiles: Vec<TileRecord>,
}

impl Manifest {
    /// Reads and validates `dataset.json` from a dataset folder ([`Manifest::validate`], with
    /// the folder's name as the dataset's name); `None` when there is none. Every reader goes
    /// through here, so no field of a hand-edited or damaged file reaches an allocation, an
    /// index, a cast or PostgreSQL unchecked.
    ///
    /// # Errors
    /// [`StageError::Store`] (also [`crate::store::StoreError::TooLarge`] for a file beyond
    /// [`MAX_MANIFEST_BYTES`], refused before it is read), [`StageError::BadManifest`] when it
    /// does not parse, [`StageError::Invalid`] naming the field; each names the file.
    pub(crate) fn read(ds: &Store) -> Result<Option<Manifest>, StageError> {
        let Some(bytes) = ds.get_limited(MANIFEST, MAX_MANIFEST_BYTES)? else { return Ok(None) };
        Manifest::parse(&bytes, &ds.url_of(MANIFEST), Some(folder_name(ds))).map(Some)
    }

    /// Parses and validates the bytes of a `dataset.json` (`file`: its URL, for messages;
    /// `folder`: the name of the folder it was found in, which must be the dataset's name).
    ///
    /// # Errors
    /// [`StageError::BadManifest`] or [`StageError::Invalid`] naming `file`.
    pub(crate) fn parse(bytes: &[u8], file: &str, folder: Option<&str>) -> Result<Manifest, StageError> {
        /// The version, read first: it decides how the rest is read.
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let parse_error = |e: serde_json::Error| parse_error(file, bytes, &e);
        let version = serde_json::from_slice::<Version>(bytes).map_err(parse_error)?.format_version;
        if version == v1::VERSION {
            let old: v1::ManifestV1 = serde_json::from_slice(bytes).map_err(parse_error)?;
            let redo = if old.is_merge() { "merge" } else { "convert" };
            let v1_error = |v: Invalid| Invalid { field: v1::field_name(&v.field), reason: v.reason }.at(file, redo);
            let m = old.upgrade().map_err(v1_error)?;
            m.validate(folder).map_err(v1_error)?;
            return Ok(m);
        }
        if version != FORMAT_VERSION {
            let reason = format!("is {version}, this rasterstage reads {} and {FORMAT_VERSION}", v1::VERSION);
            return Err(Invalid { field: "format_version".into(), reason }.at(file, "convert"));
        }
        let m: Manifest = serde_json::from_slice(bytes).map_err(parse_error)?;
        m.validate(folder).map_err(|v| v.at(file, m.redo()))?;
        Ok(m)
    }

    /// The command that rewrites this dataset (`convert` or `merge`).
    pub(crate) fn redo(&self) -> &'static str {
        match self.kind {
            Kind::Raster(_) => "convert",
            Kind::Merge(_) => "merge",
        }
    }

    /// The value columns of a merge; `None` for a converted raster (one `value` column).
    pub(crate) fn columns(&self) -> Option<&[Column]> {
        match &self.kind {
            Kind::Merge(m) => Some(&m.columns),
            Kind::Raster(_) => None,
        }
    }

    /// `passthrough`, the resampling method, or `merge`, as inspect and the catalogue show it.
    pub(crate) fn method_label(&self) -> &'static str {
        match &self.kind {
            Kind::Raster(r) => r.method.name(),
            Kind::Merge(_) => "merge",
        }
    }

    /// The cell type and nodata of the dataset's one value column; for a merge, whose
    /// columns each have their own, Float64 (the type of its value sums) and none.
    pub(crate) fn value_type(&self) -> (DataType, Option<f64>) {
        match &self.kind {
            Kind::Raster(r) => (r.dtype, r.nodata),
            Kind::Merge(_) => (DataType::Float64, None),
        }
    }

    /// Checks everything a reader relies on, so that a manifest that passes describes a
    /// dataset rasterstage could have written: the name (equal to `folder` when given), a
    /// grid within [`MAX_GRID_SIDE`] and [`MAX_GRID_CELLS`] with finite, non-zero, north-up
    /// cell sizes, a window in `1..=MAX_WINDOW`, `tile_count` equal to the grid's window
    /// count (at most [`MAX_TILES`]), every listed tile exactly one window of that lattice
    /// (id, position, size, object key) listed once, in order, all of them when the status
    /// is complete, every count within its PostgreSQL column, no NaN sum, and the dataset's
    /// totals equal to the sums of its tiles. A converting manifest may list any subset of
    /// the tiles (usually none).
    ///
    /// # Errors
    /// The first [`Invalid`] field found.
    pub(crate) fn validate(&self, folder: Option<&str>) -> Result<(), Invalid> {
        let (v, window) = (self.format_version, self.window);
        refuse_if!(v != FORMAT_VERSION, "format_version", "is {v}, this rasterstage writes {FORMAT_VERSION}");
        check_name("name", &self.name)?;
        if let Some(f) = folder {
            refuse_if!(
                f != self.name,
                "name",
                "is {:?} but the file is in folder {f:?}: a dataset.json must sit in its own dataset's folder",
                self.name
            );
        }
        check_grid("grid", &self.grid)?;
        if let Kind::Raster(r) = &self.kind {
            let band = r.source.band;
            refuse_if!(
                band == 0 || i32::try_from(band).is_err(),
                "kind.raster.source.band",
                "is {band}, must be a band number from 1 to {}",
                i32::MAX
            );
        }
        let b = &self.bounds;
        for (k, v) in [("minx", b.minx), ("miny", b.miny), ("maxx", b.maxx), ("maxy", b.maxy)] {
            refuse_if!(!v.is_finite(), format!("bounds.{k}"), "is {v:?}, must be finite");
        }
        refuse_if!(!(1..=MAX_WINDOW).contains(&window), "window", "is {window}, must be from 1 to {MAX_WINDOW} cells");
        if let StagedFormat::Zarr { version, shard: Some(k) } = self.format {
            let field = "format.zarr.shard";
            refuse_if!(version != ZarrVersion::V3, field, "is {k}, but sharding is a Zarr v3 feature");
            refuse_if!(self.columns().is_some(), field, "is {k}, but merged datasets are not sharded");
            refuse_if!(
                !(1..=MAX_ZARR_SHARD).contains(&k) || k.saturating_mul(window) > MAX_WINDOW,
                field,
                "is {k}, must be from 1 to {MAX_ZARR_SHARD} windows with at most {MAX_WINDOW} cells a side ({window} x {k} here)"
            );
        }
        refuse_if!(
            self.columns().is_some() && self.format.geoparquet().is_some(),
            "format.parquet.geoparquet",
            "merged datasets are not written as GeoParquet"
        );
        let (windows, tile_count, listed) = (self.window_count(), self.tile_count, self.tiles.len());
        refuse_if!(
            windows > MAX_TILES,
            "window",
            "is {window}: the grid would have {windows} tiles, more than {MAX_TILES}"
        );
        refuse_if!(
            tile_count as u64 != windows,
            "tile_count",
            "is {tile_count}, but the {}x{} grid has {windows} tiles of {} cells",
            self.grid.width,
            self.grid.height,
            self.tile_side()
        );
        if let Some(cols) = self.columns() {
            check_columns(&self.grid, cols).map_err(|v| v.within("kind.merge"))?;
        }
        refuse_if!(listed > tile_count, "tiles", "lists {listed} tiles, more than tile_count {tile_count}");
        let mut rows: u64 = 0;
        let mut prev: Option<(usize, usize)> = None;
        for (i, t) in self.tiles.iter().enumerate() {
            self.check_tile(t).map_err(|v| v.within(&format!("tiles[{i}]")))?;
            let at = (t.window.row0, t.window.col0);
            refuse_if!(prev == Some(at), format!("tiles[{i}]"), "lists tile {} twice", t.id);
            refuse_if!(
                prev > Some(at),
                format!("tiles[{i}]"),
                "tile {} is out of order (tiles are sorted by row, then column)",
                t.id
            );
            prev = Some(at);
            rows = rows.saturating_add(t.row_count);
        }
        refuse_if!(
            self.status == Status::Complete && listed != tile_count,
            "tiles",
            "lists {listed} of the {tile_count} tiles, but the status is complete"
        );
        let (row_count, value_sum) = (self.row_count, self.value_sum);
        refuse_if!(row_count != rows, "row_count", "is {row_count}, but the tiles hold {rows} rows");
        refuse_if!(i64::try_from(row_count).is_err(), "row_count", "is {row_count}, more than a PostgreSQL int8 holds");
        let sum = self.tiles_sum();
        refuse_if!(!same_sum(value_sum, sum), "value_sum", "is {value_sum:?}, but the tiles' values sum to {sum:?}");
        Ok(())
    }

    /// Cells along one side of a tile: the window, or a shard's K windows (`zarr_shard`).
    /// Tiles (units of work, commit records, loader transactions) lie on this lattice.
    pub(crate) fn tile_side(&self) -> usize {
        self.window.max(1).saturating_mul(self.format.shard().unwrap_or(1).max(1))
    }

    /// Number of tiles of the grid (without listing them).
    pub(crate) fn window_count(&self) -> u64 {
        let w = self.tile_side() as u64;
        let across = (self.grid.width as u64).div_ceil(w);
        let down = (self.grid.height as u64).div_ceil(w);
        across.saturating_mul(down)
    }

    /// Sum of the listed tiles' value sums, correctly rounded ([`exact_sum`], as
    /// [`Manifest::set_tiles`] adds), so it does not depend on the order of the tiles.
    pub(crate) fn tiles_sum(&self) -> f64 {
        exact_sum(self.tiles.iter().map(|t| t.value_sum))
    }

    /// The tile (window, or shard) of this dataset's lattice that starts at `(row0, col0)`,
    /// if one does.
    pub(crate) fn window_at(&self, row0: usize, col0: usize) -> Option<Window> {
        let (w, g) = (self.tile_side(), &self.grid);
        (row0 % w == 0 && col0 % w == 0 && row0 < g.height && col0 < g.width).then(|| Window {
            row0,
            col0,
            rows: w.min(g.height - row0),
            cols: w.min(g.width - col0),
        })
    }

    /// Checks that `t` is one window of this dataset's lattice, with the id and object key
    /// rasterstage gives it and counts it can hold (field names relative to the tile).
    ///
    /// # Errors
    /// The first [`Invalid`] field.
    pub(crate) fn check_tile(&self, t: &TileRecord) -> Result<(), Invalid> {
        t.check()?;
        let (Window { row0, col0, rows, cols }, id, g) = (t.window, &t.id, &self.grid);
        let Some(w) = self.window_at(row0, col0) else {
            let w = self.tile_side();
            let field = if row0 >= g.height || row0 % w != 0 { "window.row0" } else { "window.col0" };
            refuse_if!(
                row0 >= g.height || col0 >= g.width,
                field,
                "({row0}, {col0}) of tile {id} lies outside the {}x{} grid",
                g.width,
                g.height
            );
            return invalid(field, format!("({row0}, {col0}) of tile {id} is not on the lattice of {w}-cell tiles"));
        };
        let (wr, wc) = (w.rows, w.cols);
        refuse_if!(
            (rows, cols) != (wr, wc),
            "window.rows",
            "tile {id} is {rows}x{cols} cells, its window is {wr}x{wc}"
        );
        if let Some(p) = &t.path {
            let want = self.tile_key(row0, col0, id);
            refuse_if!(*p != want, "path", "is {:?}, tile {id} is stored at {want:?}", short(p));
        }
        Ok(())
    }

    /// The key of the (first) object of the tile at `(row0, col0)`.
    fn tile_key(&self, row0: usize, col0: usize, id: &str) -> String {
        match self.format {
            StagedFormat::Parquet { .. } => super::keys::parquet_tile(id),
            StagedFormat::Zarr { version, .. } => {
                let first = self.columns().and_then(|c| c.first()).map_or(self.name.as_str(), |c| c.name.as_str());
                let w = self.tile_side();
                super::keys::chunk_key(&self.name, version, first, &[row0 / w, col0 / w])
            }
        }
    }

    /// What a rerun of convert or merge finds in dataset folder `ds`: its manifest, after the
    /// temporary files a killed run left are removed (`--overwrite`'s delete cannot see them:
    /// no listing shows them). With `overwrite`, a damaged or edited dataset.json (what its
    /// error tells the user to replace that way) is deleted with the folder: `None`.
    ///
    /// # Errors
    /// As [`Manifest::read`].
    pub(crate) fn read_for_rerun(ds: &Store, overwrite: bool) -> Result<Option<Manifest>, StageError> {
        ds.remove_stale_uploads()?;
        match Manifest::read(ds) {
            Err(e) if overwrite && e.is_bad_manifest() => {
                tracing::warn!("--overwrite: replacing {}: {e}", ds.url());
                ds.delete_prefix("")?;
                Ok(None)
            }
            r => r,
        }
    }

    /// Writes `dataset.json` atomically.
    ///
    /// # Errors
    /// [`StageError::Store`].
    pub(crate) fn write(&self, ds: &Store) -> Result<(), StageError> {
        Ok(ds.put(MANIFEST, self.to_json())?)
    }

    /// Writes `dataset.json` only if there is none yet (an atomic create, on S3 too); returns
    /// whether it wrote. Sharded runs start a dataset this way, so a shard that starts late
    /// can never overwrite a manifest another shard has meanwhile completed.
    ///
    /// # Errors
    /// [`StageError::Store`].
    pub(crate) fn create(&self, ds: &Store) -> Result<bool, StageError> {
        Ok(ds.put_if_absent(MANIFEST, self.to_json())?)
    }

    /// `dataset.json`'s bytes: pretty JSON and a newline.
    fn to_json(&self) -> Bytes {
        let mut json = serde_json::to_vec_pretty(self).expect("manifest serialises");
        json.push(b'\n');
        Bytes::from(json)
    }

    /// The object keys of committed tile `t`, relative to the dataset folder: none for a tile
    /// without valid cells, its path, or, in a merged Zarr dataset, the window's chunk of
    /// every column, in column order (what its checksum covers).
    pub(crate) fn tile_keys(&self, t: &TileRecord) -> Vec<String> {
        match (&t.path, self.format, self.columns()) {
            (None, _, _) => Vec::new(),
            (Some(_), StagedFormat::Zarr { version, .. }, Some(cols)) => {
                let idx = [t.window.row0 / self.tile_side(), t.window.col0 / self.tile_side()];
                cols.iter().map(|c| super::keys::chunk_key(&self.name, version, &c.name, &idx)).collect()
            }
            (Some(p), _, _) => vec![p.clone()],
        }
    }

    /// The folders that hold the tile objects: `tiles/`, or each value array of the Zarr group.
    pub(crate) fn tile_prefixes(&self) -> Vec<String> {
        match (self.format, self.columns()) {
            (StagedFormat::Parquet { .. }, _) => vec![super::keys::TILES.to_string()],
            (StagedFormat::Zarr { .. }, None) => vec![super::keys::zarr_array(&self.name, &self.name)],
            (StagedFormat::Zarr { .. }, Some(cols)) => {
                cols.iter().map(|c| super::keys::zarr_array(&self.name, &c.name)).collect()
            }
        }
    }

    /// Whether `key`, under one of [`Manifest::tile_prefixes`], is a tile object (not metadata).
    pub(crate) fn is_tile_key(&self, key: &str) -> bool {
        match self.format {
            StagedFormat::Parquet { .. } => super::keys::is_parquet_tile(key),
            StagedFormat::Zarr { .. } => !super::keys::is_zarr_metadata(key),
        }
    }

    /// Puts the committed records in, sorted, and totals them.
    ///
    /// # Errors
    /// [`StageError::NanSum`] when the tiles' sums add up to NaN (one at +inf, another at
    /// -inf): a dataset.json every reader would refuse ([`same_sum`] matches no NaN).
    pub(crate) fn set_tiles(&mut self, mut tiles: Vec<TileRecord>) -> Result<(), StageError> {
        tiles.sort_by_key(|t| (t.window.row0, t.window.col0));
        self.row_count = tiles.iter().map(|t| t.row_count).sum();
        self.value_sum = exact_sum(tiles.iter().map(|t| t.value_sum));
        self.tiles = tiles;
        if self.value_sum.is_nan() {
            return Err(StageError::NanSum(self.name.clone()));
        }
        Ok(())
    }
}

impl TileRecord {
    /// Checks what a record says about itself, before it is placed on a grid: its id is
    /// `r<row0>_c<col0>`, its window fits PostgreSQL's `int4` indices and [`MAX_WINDOW`], it
    /// holds at most one row per cell, its sum is a number, and it names an object with a
    /// checksum exactly when it has rows (field names relative to the record).
    ///
    /// # Errors
    /// The first [`Invalid`] field.
    pub(crate) fn check(&self) -> Result<(), Invalid> {
        let (Window { row0, col0, rows, cols }, tile) = (self.window, short(&self.id));
        for (k, v) in [("window.rows", rows), ("window.cols", cols)] {
            refuse_if!(!(1..=MAX_WINDOW).contains(&v), k, "is {v} in tile {tile}, must be from 1 to {MAX_WINDOW}");
        }
        for (k, start, len) in [("window.row0", row0, rows), ("window.col0", col0, cols)] {
            refuse_if!(
                start.checked_add(len).is_none_or(|end| end as u64 > MAX_GRID_SIDE),
                k,
                "is {start} in tile {tile}: its window ends beyond cell {MAX_GRID_SIDE}"
            );
        }
        let id = self.window.tile_id();
        refuse_if!(self.id != id, "id", "is {tile:?}, but the tile's row0 and col0 make it {id:?}");
        let (cells, row_count) = ((rows as u64) * (cols as u64), self.row_count);
        refuse_if!(row_count > cells, "row_count", "is {row_count} in tile {tile}, more than its {cells} cells");
        refuse_if!(self.value_sum.is_nan(), "value_sum", "is NaN in tile {tile}");
        match (&self.path, &self.checksum) {
            (None, None) if self.row_count == 0 && self.value_sum == 0.0 && self.bytes == 0 => {}
            (None, _) => {
                return invalid(
                    "path",
                    format!("is null in tile {tile} (nothing stored), but its row_count, value_sum, checksum or bytes are not empty"),
                )
            }
            (Some(_), Some(c)) if self.row_count > 0 && is_checksum(c) => {}
            (Some(_), Some(c)) if !is_checksum(c) => {
                return invalid("checksum", format!("{:?} of tile {tile} is not sha256:<64 hex digits>", short(c)))
            }
            (Some(_), Some(_)) => return invalid("row_count", format!("is 0 in tile {tile}, which has a stored object")),
            (Some(_), None) => return invalid("checksum", format!("is null in tile {tile}, which has a stored object")),
        }
        Ok(())
    }
}

/// The value columns of a merge on its `grid`: 1 to [`MAX_COLUMNS`], each a safe name that is
/// not a key column's, listed once, with its input's cell (0, 0) on the grid.
fn check_columns(grid: &Grid, cols: &[Column]) -> Result<(), Invalid> {
    let n = cols.len();
    refuse_if!(n == 0 || n > MAX_COLUMNS, "columns", "has {n} entries, must have 1 to {MAX_COLUMNS}");
    let mut seen = std::collections::HashSet::new();
    for (i, c) in cols.iter().enumerate() {
        let field = format!("columns[{i}]");
        check_name(&format!("{field}.name"), &c.name)?;
        refuse_if!(
            RESERVED_COLUMNS.contains(&c.name.as_str()) || !seen.insert(c.name.as_str()),
            format!("{field}.name"),
            "{:?} is a key column's name or listed twice",
            c.name
        );
        let (h, w) = (grid.height as u64, grid.width as u64);
        for (k, (v, side)) in ["row", "col"].iter().zip([(c.offset[0], h), (c.offset[1], w)]) {
            refuse_if!(
                u64::try_from(v).map_or(true, |v| v >= side),
                format!("{field}.offset"),
                "{k} {v} lies outside the merged grid ({side} cells)"
            );
        }
    }
    Ok(())
}

/// `s`, cut to a length that keeps an error message on one readable line.
fn short(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Whether `s` is `sha256:` and 64 lowercase hex digits.
fn is_checksum(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// A field of a manifest or commit record that is not what rasterstage writes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} {reason}")]
pub(crate) struct Invalid {
    /// The field, as a path: `grid.dx`, `tiles[3].row0`.
    pub(crate) field: String,
    /// What is wrong with its value.
    pub(crate) reason: String,
}

impl Invalid {
    /// The same field inside `parent` (`row0` in `tiles[3]` is `tiles[3].row0`).
    pub(crate) fn within(self, parent: &str) -> Invalid {
        Invalid { field: format!("{parent}.{}", self.field), reason: self.reason }
    }

    /// The error for this field of `file`, which `redo` (convert or merge) rewrites.
    pub(crate) fn at(self, file: &str, redo: &'static str) -> StageError {
        StageError::Invalid { file: file.to_string(), field: self.field, reason: self.reason, redo }
    }
}

fn invalid<T>(field: impl Into<String>, reason: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid { field: field.into(), reason: reason.into() })
}

/// A dataset (or column) name: a safe identifier, already normalised.
fn check_name(field: &str, name: &str) -> Result<(), Invalid> {
    match DatasetName::new(name) {
        Ok(n) if n.as_str() == name => Ok(()),
        _ => invalid(
            field,
            format!("{:?} is not a safe dataset name ([a-z_][a-z0-9_]*, at most 63 characters)", short(name)),
        ),
    }
}

/// A north-up grid of bounded size with finite, non-zero cell sizes and a finite extent.
fn check_grid(field: &str, g: &Grid) -> Result<(), Invalid> {
    let at = |k: &str| format!("{field}.{k}");
    for (k, v) in [("x0", g.x0), ("y0", g.y0)] {
        refuse_if!(!v.is_finite(), at(k), "is {v:?}, must be finite");
    }
    let (dx, dy, w, h, cells) = (g.dx, g.dy, g.width, g.height, g.cells());
    refuse_if!(!(dx.is_finite() && dx > 0.0), at("dx"), "is {dx:?}, must be finite and positive");
    refuse_if!(!(dy.is_finite() && dy < 0.0), at("dy"), "is {dy:?}, must be finite and negative (north-up)");
    for (k, v) in [("width", w as u64), ("height", h as u64)] {
        refuse_if!(!(1..=MAX_GRID_SIDE).contains(&v), at(k), "is {v}, must be from 1 to {MAX_GRID_SIDE} cells");
    }
    refuse_if!(cells > MAX_GRID_CELLS, at("width"), "{w} x height {h} is {cells} cells, more than {MAX_GRID_CELLS}");
    let b = g.bounds();
    let finite = [b.minx, b.maxx, b.miny, b.maxy].iter().all(|v| v.is_finite());
    refuse_if!(!finite, at("dx"), "and dy make the grid's extent infinite");
    if let Some(e) = g.epsg {
        refuse_if!(e == 0 || i32::try_from(e).is_err(), at("epsg"), "is {e}, must be from 1 to {}", i32::MAX);
    }
    Ok(())
}

/// The sum of `values` correctly rounded to the nearest double (ties to even), whatever their
/// order: Shewchuk's exact partials, as Python's `math.fsum`. A plain left-to-right sum of
/// tile sums drifts in the last bits with the tile order and the count; every total of tile
/// sums (dataset.json's `value_sum`, its validation, inspect, shard summaries) uses this one.
/// With an infinity or NaN among the values, or an overflowing total, the plain sum (inf or
/// NaN) is returned.
pub(crate) fn exact_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut partials: Vec<f64> = Vec::new();
    let mut plain = 0.0;
    let mut special = false;
    for mut x in values {
        plain += x;
        if !x.is_finite() {
            special = true;
            continue;
        }
        let mut i = 0;
        for j in 0..partials.len() {
            let mut y = partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if !hi.is_finite() {
                return plain;
            }
            if lo != 0.0 {
                partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        partials.truncate(i);
        partials.push(x);
    }
    if special {
        return plain;
    }
    // Sum the partials from the top; the first inexact step decides the rounding, with the
    // half-way case corrected by the sign of the next partial (as math.fsum).
    let Some(mut hi) = partials.pop() else { return 0.0 };
    let mut lo = 0.0;
    while let Some(x) = partials.pop() {
        let y = hi;
        hi = y + x;
        let yr = hi - y;
        lo = x - yr;
        if lo != 0.0 {
            break;
        }
    }
    if partials.last().is_some_and(|&next| (lo < 0.0 && next < 0.0) || (lo > 0.0 && next > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        if y == x - hi {
            hi = x;
        }
    }
    hi
}

/// Whether two value sums agree up to summation order: equal, or finite and within a
/// relative 1e-9. NaN agrees with nothing (not even NaN), so a NaN sum is always a mismatch.
pub(crate) fn same_sum(a: f64, b: f64) -> bool {
    a == b || (a.is_finite() && b.is_finite() && (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0))
}

/// The name of the folder `ds` is (the last part of its URL): a dataset's name.
fn folder_name(ds: &Store) -> &str {
    ds.url().rsplit('/').next().unwrap_or("")
}

/// A parse error of `file`, naming the field it was in when that can be told from the text.
fn parse_error(file: &str, bytes: &[u8], e: &serde_json::Error) -> StageError {
    // Valid JSON has no syntax error: serde_json reports one there only when an object that
    // names a variant (`"format": {"parquet": {}}`) has a second key ("expected value").
    let misplaced = e.is_syntax() && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
    let reason = match field_near(bytes, e.line(), e.column()) {
        Some(k) if misplaced => {
            format!("field {k}: the object that holds it must have no other key ({})", error_line(e))
        }
        Some(k) if e.is_data() => format!("field {k}: {}", error_line(e)),
        _ => error_line(e),
    };
    StageError::BadManifest(file.to_string(), reason)
}

/// serde_json's message for `e` on one readable line: serde quotes the offending value
/// whole (`unknown variant`, `invalid type: string`), so a hand-edited value with a newline
/// or 10 kB of text would otherwise break the one-line error or bury it. Control characters
/// are escaped and the message is cut to 160 characters; the position is kept.
fn error_line(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let at = format!(" at line {} column {}", e.line(), e.column());
    let msg = text.strip_suffix(&at).unwrap_or(&text);
    let mut out: String =
        msg.chars().take(160).map(|c| if c.is_control() { c.escape_default().to_string() } else { c.into() }).collect();
    if msg.chars().nth(160).is_some() {
        out.push_str("...");
    }
    if text.len() != msg.len() {
        out.push_str(&at);
    }
    out
}

/// The key of the last `"key":` before line `line`, column `column` (both from 1) of a JSON
/// text: the field whose value serde_json was reading when it stopped.
fn field_near(bytes: &[u8], line: usize, column: usize) -> Option<String> {
    let mut start = 0;
    for _ in 1..line {
        start += bytes.get(start..)?.iter().position(|&b| b == b'\n')? + 1;
    }
    let end = start.saturating_add(column).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[..end]);
    let mut rest: &str = &text;
    while let Some(colon) = rest.rfind(':') {
        if let Some(quoted) = rest[..colon].trim_end().strip_suffix('"') {
            if let Some(open) = quoted.rfind('"') {
                let key = &quoted[open + 1..];
                if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Some(key.to_string());
                }
            }
        }
        rest = &rest[..colon];
    }
    None
}

/// Commits a tile: records it after its object is complete.
///
/// # Errors
/// [`StageError::Store`].
pub(crate) fn commit(ds: &Store, rec: &TileRecord) -> Result<(), StageError> {
    let json = serde_json::to_vec(rec).expect("tile record serialises");
    Ok(ds.put(&super::keys::commit_record(&rec.id), Bytes::from(json))?)
}

/// Every committed tile record of a dataset folder that is consistent in itself
/// ([`TileRecord::check`]) and stored under its own id; the others are ignored with a
/// warning naming the file and field, so their tiles count as not committed.
///
/// # Errors
/// [`StageError::Store`] (a record beyond [`MAX_MANIFEST_BYTES`] is refused unread).
pub(crate) fn committed(ds: &Store) -> Result<Vec<TileRecord>, StageError> {
    let mut out = Vec::new();
    for key in ds.list(COMMITS)? {
        let Some(stem) = super::keys::commit_id(&key) else {
            continue;
        };
        let Some(bytes) = ds.get_limited(&key, MAX_MANIFEST_BYTES)? else { continue };
        match parse_record(&bytes, &ds.url_of(&key), stem) {
            Ok(r) => out.push(r),
            // A record is written atomically, so a bad one is foreign: redo that tile.
            Err(e) => tracing::warn!("ignoring commit record: {e}"),
        }
    }
    Ok(out)
}

/// Parses and checks the commit record `file` ([`TileRecord::check`]), stored as
/// `_tiles/<stem>.json`; the error is one line naming `file` and the field.
fn parse_record(bytes: &[u8], file: &str, stem: &str) -> Result<TileRecord, String> {
    /// Whether a record has today's nested `window` (else it is read as version 1).
    #[derive(Deserialize)]
    struct Probe {
        window: Option<serde::de::IgnoredAny>,
    }
    // Records of a run before the typed manifest (a version-1 dataset resumed) are flat. A
    // record that fails both is told what its own version expects: a flat record with a
    // typo would otherwise hear that `row0` is unknown.
    let r = serde_json::from_slice::<TileRecord>(bytes)
        .or_else(|e| {
            serde_json::from_slice::<v1::TileRecordV1>(bytes).map(TileRecord::from).map_err(|e1| {
                match serde_json::from_slice::<Probe>(bytes) {
                    Ok(Probe { window: None }) => e1,
                    _ => e,
                }
            })
        })
        .map_err(|e| parse_error(file, bytes, &e).to_string())?;
    r.check().map_err(|v| format!("{file}: {v}"))?;
    if r.id != stem {
        return Err(format!("{file}: id {:?} is not the record's file name", short(&r.id)));
    }
    Ok(r)
}

/// Ids of every committed tile of a dataset folder, from one listing of the records (no
/// record is read).
///
/// # Errors
/// [`StageError::Store`].
pub(crate) fn committed_ids(ds: &Store) -> Result<std::collections::HashSet<String>, StageError> {
    Ok(ds.list(COMMITS)?.into_iter().filter_map(|k| super::keys::commit_id(&k).map(String::from)).collect())
}

/// `sha256:<hex>` of `bytes`.
pub fn checksum(bytes: &[u8]) -> String {
    checksum_parts([bytes])
}

/// `sha256:<hex>` of `parts` concatenated, without copying them together.
pub(crate) fn checksum_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

pub(crate) use crate::json::{json_f64, json_opt_f64};

#[cfg(test)]
pub(crate) mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A complete manifest of a 70 x 40 grid in 32-cell windows (3 x 2 = 6 tiles), as JSON.
    pub(super) fn complete() -> Value {
        let grid = json!({"crs_wkt": "", "epsg": 4326, "x0": -180.0, "y0": 90.0, "dx": 0.5, "dy": -0.5,
            "width": 70, "height": 40});
        let mut tiles = Vec::new();
        for row0 in [0, 32] {
            for col0 in [0, 32, 64] {
                let (rows, cols) = (32.min(40 - row0), 32.min(70 - col0));
                let id = format!("r{row0}_c{col0}");
                let (path, sum, check, n) = if row0 == 0 && col0 == 0 {
                    (Value::Null, 0.0, Value::Null, 0)
                } else {
                    (
                        json!(format!("tiles/{id}.parquet")),
                        1.5 * (row0 + col0) as f64,
                        json!(checksum(id.as_bytes())),
                        3,
                    )
                };
                tiles.push(json!({"id": id, "row0": row0, "col0": col0, "rows": rows, "cols": cols, "path": path,
                    "row_count": n, "value_sum": sum, "checksum": check, "bytes": n * 10}));
            }
        }
        let rows: u64 = tiles.iter().map(|t| t["row_count"].as_u64().unwrap()).sum();
        let sum: f64 = tiles.iter().map(|t| t["value_sum"].as_f64().unwrap()).sum();
        json!({"format_version": 1, "name": "plants", "status": "complete", "created_by": "test",
            "source": {"path": "a.tif", "band": 1, "dtype": "Float32", "nodata": null, "grid": grid.clone(),
                "fingerprint": {"size": 1, "mtime": 0, "mtime_ns": 0}},
            "grid": grid, "lattice_offset": [0, 0], "bounds": {"minx": -180.0, "miny": 70.0, "maxx": -145.0, "maxy": 90.0},
            "method": "passthrough", "dtype": "Float32", "nodata": null, "window": 32, "format": "parquet",
            "zarr_version": null, "settings_hash": "sha256:00", "tile_count": 6, "row_count": rows, "value_sum": sum,
            "tiles": tiles})
    }

    pub(super) fn parse(v: &Value) -> Result<Manifest, StageError> {
        Manifest::parse(&serde_json::to_vec_pretty(v).unwrap(), "st/plants/dataset.json", Some("plants"))
    }

    /// The field `edit` makes invalid, or the parse error's text.
    fn refused(edit: impl FnOnce(&mut Value)) -> String {
        refused_in(complete(), edit)
    }

    /// The field `edit` of `v` makes invalid, or the parse error's text.
    fn refused_in(mut v: Value, edit: impl FnOnce(&mut Value)) -> String {
        edit(&mut v);
        match parse(&v) {
            Err(StageError::Invalid { field, file, .. }) => {
                assert_eq!(file, "st/plants/dataset.json");
                field
            }
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted: {v}"),
        }
    }

    #[test]
    fn a_complete_manifest_passes_and_a_converting_one_may_list_any_tiles() {
        parse(&complete()).unwrap();
        let mut v = complete();
        v["status"] = json!("converting");
        v["tiles"] = json!([]);
        v["row_count"] = json!(0);
        v["value_sum"] = json!(0.0);
        parse(&v).unwrap();
        // Written and read back: the same value.
        let m = parse(&complete()).unwrap();
        let again = Manifest::parse(&serde_json::to_vec(&m).unwrap(), "f", Some("plants")).unwrap();
        assert_eq!(again, m);
    }

    type Edit = Box<dyn FnOnce(&mut Value)>;

    #[test]
    fn every_tampered_field_is_named() {
        let two_pow_40 = 1u64 << 40;
        let cases: Vec<(&str, Edit)> = vec![
            ("name", Box::new(|v| v["name"] = json!("other"))),
            ("name", Box::new(|v| v["name"] = json!("Bad-Name"))),
            ("format_version", Box::new(|v| v["format_version"] = json!(3))),
            ("grid.dx", Box::new(|v| v["grid"]["dx"] = json!(0.0))),
            ("grid.dy", Box::new(|v| v["grid"]["dy"] = json!(0.5))),
            ("grid.dx", Box::new(|v| v["grid"]["dx"] = json!(1e308))),
            ("grid.width", Box::new(|v| v["grid"]["width"] = json!(0))),
            ("grid.width", Box::new(move |v| v["grid"]["width"] = json!(two_pow_40))),
            (
                "grid.width",
                Box::new(|v| {
                    v["grid"]["width"] = json!(MAX_GRID_SIDE);
                    v["grid"]["height"] = json!(MAX_GRID_SIDE);
                }),
            ),
            ("grid.epsg", Box::new(|v| v["grid"]["epsg"] = json!(u32::MAX))),
            ("source.band", Box::new(|v| v["source"]["band"] = json!(0))),
            ("window", Box::new(|v| v["window"] = json!(0))),
            ("window", Box::new(|v| v["window"] = json!(1u64 << 31))),
            (
                "window",
                Box::new(|v| {
                    v["window"] = json!(1);
                    v["grid"]["width"] = json!(1u64 << 20);
                    v["grid"]["height"] = json!(1u64 << 20);
                }),
            ),
            ("tile_count", Box::new(|v| v["tile_count"] = json!(5))),
            ("zarr_version", Box::new(|v| v["zarr_version"] = json!(3))),
            ("tiles", Box::new(|v| v["tiles"].as_array_mut().unwrap().truncate(3))),
            (
                "tiles",
                Box::new(|v| {
                    let t = v["tiles"][5].clone();
                    v["tiles"].as_array_mut().unwrap().push(t)
                }),
            ),
            ("tiles[2]", Box::new(|v| v["tiles"][2] = v["tiles"][1].clone())),
            ("tiles[2]", Box::new(|v| v["tiles"].as_array_mut().unwrap().swap(1, 2))),
            ("tiles[2].id", Box::new(|v| v["tiles"][2]["id"] = json!("r0_c32"))),
            ("tiles[2].row0", Box::new(|v| v["tiles"][2]["row0"] = json!(1u64 << 32))),
            (
                "tiles[2].row0",
                Box::new(|v| {
                    v["tiles"][2]["row0"] = json!(16);
                    v["tiles"][2]["id"] = json!("r16_c64");
                }),
            ),
            ("tiles[2].rows", Box::new(|v| v["tiles"][2]["rows"] = json!(31))),
            ("tiles[2].row_count", Box::new(|v| v["tiles"][2]["row_count"] = json!(32 * 6 + 1))),
            ("tiles[2].value_sum", Box::new(|v| v["tiles"][2]["value_sum"] = json!("NaN"))),
            ("tiles[2].path", Box::new(|v| v["tiles"][2]["path"] = json!("../keep/tiles/r0_c64.parquet"))),
            ("tiles[2].checksum", Box::new(|v| v["tiles"][2]["checksum"] = json!("sha256:zz"))),
            ("tiles[0].path", Box::new(|v| v["tiles"][0]["row_count"] = json!(1))),
            ("row_count", Box::new(|v| v["row_count"] = json!(1))),
            ("value_sum", Box::new(|v| v["value_sum"] = json!(1e308))),
            ("value_sum", Box::new(|v| v["value_sum"] = json!("NaN"))),
            ("columns", Box::new(|v| v["columns"] = json!([]))),
            (
                "columns[0].name",
                Box::new(|v| {
                    v["columns"] =
                        json!([{"name": "x", "dtype": "Byte", "nodata": null, "source": "s", "offset": [0, 0]}])
                }),
            ),
            (
                "columns[0].offset",
                Box::new(|v| {
                    v["columns"] =
                        json!([{"name": "a", "dtype": "Byte", "nodata": null, "source": "s", "offset": [40, 0]}])
                }),
            ),
        ];
        for (field, edit) in cases {
            assert_eq!(refused(edit), field);
        }
    }

    /// [`complete`] as this version writes it (format_version 2).
    fn complete_v2() -> Value {
        serde_json::to_value(parse(&complete()).unwrap()).unwrap()
    }

    /// The field `edit` of [`complete_v2`] makes invalid, or the parse error's text.
    fn refused_v2(edit: impl FnOnce(&mut Value)) -> String {
        refused_in(complete_v2(), edit)
    }

    #[test]
    fn version_1_reads_as_the_typed_manifest_and_version_2_round_trips() {
        let m = parse(&complete()).unwrap();
        assert_eq!(m.format_version, FORMAT_VERSION);
        let Kind::Raster(r) = &m.kind else { panic!("{m:?}") };
        assert_eq!((r.method, r.dtype, r.nodata, r.source.band), (Resampling::Passthrough, DataType::Float32, None, 1));
        assert_eq!(m.format, StagedFormat::Parquet { geoparquet: None, compat: false });
        assert_eq!(m.tiles[4].window, Window { row0: 32, col0: 32, rows: 8, cols: 32 });
        // Written as version 2: the kind, the format and each tile's window nested.
        let v = complete_v2();
        assert_eq!(v["format_version"], 2);
        assert_eq!(v["kind"]["raster"]["method"], "passthrough");
        assert_eq!(v["kind"]["raster"]["source"]["path"], "a.tif");
        assert_eq!(v["format"], json!({"parquet": {}}));
        assert_eq!(v["tiles"][4]["window"], json!({"row0": 32, "col0": 32, "rows": 8, "cols": 32}));
        for gone in ["source", "method", "dtype", "nodata", "zarr_version", "columns"] {
            assert!(v.get(gone).is_none(), "{gone}");
        }
        assert_eq!(parse(&v).unwrap(), m);
        // A resampled, sharded Zarr dataset and a merge round-trip as well.
        let mut z = sharded();
        z["method"] = json!("average");
        let zm = parse(&z).unwrap();
        let zv = serde_json::to_value(&zm).unwrap();
        assert_eq!(
            (zv["kind"]["raster"]["method"].as_str(), zv["format"].clone()),
            (Some("average"), json!({"zarr": {"version": 3, "shard": 2}}))
        );
        assert_eq!(parse(&zv).unwrap(), zm);
        let mm = parse(&merged()).unwrap();
        let Kind::Merge(g) = &mm.kind else { panic!("{mm:?}") };
        assert_eq!(
            (g.how, g.from.as_str(), g.description()),
            (How::Inner, "st", "merge (inner) of a, b from st".to_string())
        );
        assert_eq!((mm.redo(), mm.method_label(), mm.value_type()), ("merge", "merge", (DataType::Float64, None)));
        let mv = serde_json::to_value(&mm).unwrap();
        assert_eq!(mv["kind"]["merge"]["columns"][1]["name"], "b");
        assert_eq!(parse(&mv).unwrap(), mm);
    }

    /// [`complete`] as a version-1 merge (inner) of `a` and `b`, both at offset (0, 0).
    pub(super) fn merged() -> Value {
        let mut v = complete();
        v["source"]["path"] = json!("merge (inner) of a, b from st");
        v["source"]["dtype"] = json!("Float64");
        v["method"] = json!("merge");
        v["dtype"] = json!("Float64");
        let col = |n: &str| json!({"name": n, "dtype": "Int16", "nodata": -1.0, "source": format!("st/{n}"), "offset": [0, 0]});
        v["columns"] = json!([col("a"), col("b")]);
        v
    }

    #[test]
    fn every_tampered_v2_field_is_named() {
        let cases: Vec<(&str, Edit)> = vec![
            ("format_version", Box::new(|v| v["format_version"] = json!(0))),
            ("kind.raster.source.band", Box::new(|v| v["kind"]["raster"]["source"]["band"] = json!(0))),
            ("tiles[2].window.rows", Box::new(|v| v["tiles"][2]["window"]["rows"] = json!(31))),
            ("tiles[2].window.row0", Box::new(|v| v["tiles"][2]["window"]["row0"] = json!(1u64 << 32))),
            ("tiles[2].id", Box::new(|v| v["tiles"][2]["id"] = json!("r0_c32"))),
            ("format.zarr.shard", Box::new(|v| v["format"] = json!({"zarr": {"version": 2, "shard": 2}}))),
            ("format.zarr.shard", Box::new(|v| v["format"] = json!({"zarr": {"version": 3, "shard": 0}}))),
            ("tiles[1].path", Box::new(|v| v["format"] = json!({"zarr": {"version": 3}}))),
            (
                "kind.merge.columns[0].name",
                Box::new(|v| {
                    v["kind"] = json!({"merge": {"how": "outer", "from": "st", "columns":
                        [{"name": "x", "dtype": "Byte", "nodata": null, "source": "s", "offset": [0, 0]}]}})
                }),
            ),
            (
                "kind.merge.columns[0].offset",
                Box::new(|v| {
                    v["kind"] = json!({"merge": {"how": "outer", "from": "st", "columns":
                        [{"name": "a", "dtype": "Byte", "nodata": null, "source": "s", "offset": [0, 70]}]}})
                }),
            ),
            (
                "kind.merge.columns",
                Box::new(|v| v["kind"] = json!({"merge": {"how": "outer", "from": "st", "columns": []}})),
            ),
            (
                "format.parquet.geoparquet",
                Box::new(|v| {
                    v["kind"] = json!({"merge": {"how": "outer", "from": "st", "columns":
                        [{"name": "a", "dtype": "Byte", "nodata": null, "source": "s", "offset": [0, 0]}]}});
                    v["format"] = json!({"parquet": {"geoparquet": "wkb"}});
                }),
            ),
        ];
        for (field, edit) in cases {
            assert_eq!(refused_v2(edit), field);
        }
        // What version 2 cannot say is refused as it is read, naming the field.
        for (edit, needle) in [
            (Box::new(|v: &mut Value| v["kind"]["raster"]["method"] = json!("merge")) as Edit, "field method"),
            (Box::new(|v: &mut Value| v["zarr_version"] = json!(3)), "unknown field `zarr_version`"),
            (Box::new(|v: &mut Value| v["format"] = json!({"parquet": {"version": 3}})), "unknown field `version`"),
            (Box::new(|v: &mut Value| v["format"] = json!({"zarr": {"version": 4}})), "must be 2 or 3"),
            (Box::new(|v: &mut Value| v["tiles"][2]["row0"] = json!(0)), "unknown field `row0`"),
            (
                Box::new(|v: &mut Value| v["kind"] = json!({"merge": {"how": "left", "from": "st", "columns": []}})),
                "field how",
            ),
        ] {
            let e = refused_v2(edit);
            assert!(e.contains("not a valid rasterstage manifest") && e.contains(needle), "{needle}: {e}");
        }
        // Version 1 says what only it can say wrongly: a merge's inputs that do not parse.
        let mut v = merged();
        v["source"]["path"] = json!("a.tif");
        assert!(matches!(parse(&v), Err(StageError::Invalid { field, .. }) if field == "source.path"));
        let mut v = complete();
        v["method"] = json!("merge");
        assert!(matches!(parse(&v), Err(StageError::Invalid { field, .. }) if field == "method"));
    }

    #[test]
    fn a_version_1_commit_record_is_read() {
        let v1 = &complete()["tiles"][3];
        let rec: TileRecord = serde_json::from_value::<v1::TileRecordV1>(v1.clone()).unwrap().into();
        assert_eq!((rec.id.as_str(), rec.window), ("r32_c0", Window { row0: 32, col0: 0, rows: 8, cols: 32 }));
        rec.check().unwrap();
        assert!(serde_json::from_value::<TileRecord>(v1.clone()).is_err(), "the flat record is not today's");
    }

    #[test]
    fn a_parse_error_names_its_field() {
        let e = refused(|v| v["row_count"] = json!(-1));
        assert!(e.contains("st/plants/dataset.json") && e.contains("field row_count"), "{e}");
        let e = refused(|v| v["tiles"][3]["row0"] = json!(-5));
        assert!(e.contains("field row0"), "{e}");
        let e = Manifest::parse(b"{\"format_version\": 1, \"name\": 3}", "f", None).unwrap_err().to_string();
        assert!(e.contains("field name") && e.contains("not a valid rasterstage manifest"), "{e}");
    }

    #[test]
    fn sums_agree_only_as_numbers() {
        assert!(same_sum(1.0, 1.0 + 1e-12));
        assert!(same_sum(f64::INFINITY, f64::INFINITY));
        assert!(!same_sum(f64::NAN, f64::NAN));
        assert!(!same_sum(f64::NAN, 0.0));
        assert!(!same_sum(f64::INFINITY, 1e308));
        assert!(!same_sum(1e308, 4.1e7));
    }

    #[test]
    fn exact_sum_is_correctly_rounded_in_any_order() {
        assert_eq!(exact_sum([1e16, 1.0, -1e16, 1.0]), 2.0);
        assert_eq!(exact_sum([0.1; 10]), 1.0);
        assert_eq!(exact_sum([]), 0.0);
        assert!(exact_sum([1.0, f64::NAN]).is_nan());
        assert_eq!(exact_sum([1.0, f64::INFINITY]), f64::INFINITY);
        // Multiples of 2^-20 below 2^40 sum exactly in i128; i128 -> f64 rounds to nearest even.
        let mut s = 12345u64;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            s >> 11
        };
        for n in [3usize, 10, 1000, 20000] {
            let ints: Vec<i128> = (0..n).map(|_| (next() as i128 >> (next() % 50)) - (1i128 << 40)).collect();
            let values: Vec<f64> = ints.iter().map(|&i| i as f64 / (1u64 << 20) as f64).collect();
            let want = ints.iter().sum::<i128>() as f64 / (1u64 << 20) as f64;
            assert_eq!(exact_sum(values.iter().copied()), want, "{n}");
            assert_eq!(exact_sum(values.iter().rev().copied()), want, "{n} reversed");
        }
    }

    /// [`complete`] as a sharded Zarr v3 dataset: 16-cell windows, 2 x 2 per shard, so the
    /// tiles (shards) stay on the 32-cell lattice.
    pub(super) fn sharded() -> Value {
        let mut v = complete();
        v["format"] = json!("zarr");
        v["zarr_version"] = json!(3);
        v["zarr_shard"] = json!(2);
        v["window"] = json!(16);
        for t in v["tiles"].as_array_mut().unwrap() {
            if !t["path"].is_null() {
                let (r, c) = (t["row0"].as_u64().unwrap() / 32, t["col0"].as_u64().unwrap() / 32);
                t["path"] = json!(format!("plants.zarr/plants/c/{r}/{c}"));
            }
        }
        v
    }

    #[test]
    fn a_sharded_manifest_has_tiles_of_k_windows() {
        let m = parse(&sharded()).unwrap();
        assert_eq!((m.tile_side(), m.window_count()), (32, 6));
        assert_eq!(m.tile_keys(&m.tiles[5]), vec!["plants.zarr/plants/c/1/2".to_string()]);
        let field = |edit: fn(&mut Value)| {
            let mut v = sharded();
            edit(&mut v);
            match parse(&v) {
                Err(StageError::Invalid { field, .. }) => field,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(field(|v| v["zarr_shard"] = json!(0)), "zarr_shard");
        assert_eq!(field(|v| v["zarr_shard"] = json!(1024)), "zarr_shard");
        // 2 x 16384 cells: a shard larger than any window.
        assert_eq!(field(|v| v["window"] = json!(16384)), "zarr_shard");
        assert_eq!(field(|v| v["zarr_version"] = json!(2)), "zarr_shard");
        // Without the shard, the 16-cell windows are 15 tiles, not 6.
        assert_eq!(field(|v| v.as_object_mut().unwrap().remove("zarr_shard").map(drop).unwrap()), "tile_count");
        // A window's chunk key is not the shard's.
        assert_eq!(field(|v| v["tiles"][5]["path"] = json!("plants.zarr/plants/c/2/4")), "tiles[5].path");
    }

    #[test]
    fn parts_hash_as_their_concatenation() {
        assert_eq!(checksum_parts([&b"ab"[..], &b""[..], &b"cd"[..]]), checksum(b"abcd"));
        // sha256 of the empty string.
        assert_eq!(checksum(b""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
