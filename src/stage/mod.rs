//! Tile writers: Parquet tiles or a Zarr group, behind one trait (merged.rs: the writers of
//! merged datasets), plus the manifest that records which tiles are committed.

pub mod cf;
pub mod commit;
pub mod finalize;
pub mod footer;
pub mod geoparquet;
pub mod manifest;
pub mod merged;
pub mod parquet;
pub mod read;
pub mod zarr;

use crate::dtype::DataType;
use crate::grid::{Grid, Window};
use crate::store::{Store, StoreError};
use crate::tile::Tile;
pub use manifest::{Format, Manifest, TileRecord};

/// Errors writing or reading staged data; each names the object.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Encoding a tile failed.
    #[error("encoding tile {tile} of {dataset}: {reason}")]
    Encode {
        /// Dataset name.
        dataset: String,
        /// Tile id.
        tile: String,
        /// What went wrong.
        reason: String,
    },
    /// `dataset.json` (or a commit record) cannot be parsed.
    #[error("{0}: not a valid rasterstage manifest ({1}); convert again with --overwrite")]
    BadManifest(String, String),
    /// `dataset.json` parses but a field is not what rasterstage writes (edited or damaged):
    /// nothing of the dataset is trusted.
    #[error("{file}: invalid {field}: {reason}; the file was edited or damaged, {redo} again with --overwrite")]
    Invalid {
        /// The file.
        file: String,
        /// The field (`grid.dx`, `tiles[3].row0`).
        field: String,
        /// What is wrong with it.
        reason: String,
        /// The command that rewrites the dataset (`convert` or `merge`).
        redo: &'static str,
    },
}

impl StageError {
    /// Whether this is about the manifest's content (unparseable, invalid, too large) rather
    /// than the store: what `--overwrite` replaces.
    pub fn is_bad_manifest(&self) -> bool {
        matches!(
            self,
            StageError::BadManifest(..) | StageError::Invalid { .. } | StageError::Store(StoreError::TooLarge { .. })
        )
    }
}

/// What a writer needs to know about the dataset it writes.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Dataset name.
    pub name: String,
    /// Target grid.
    pub grid: Grid,
    /// Output cell type.
    pub dtype: DataType,
    /// Output nodata.
    pub nodata: Option<f64>,
    /// Window size (Zarr chunk size).
    pub window: usize,
    /// Zarr version (2 or 3).
    pub zarr_version: u8,
    /// Sharded Zarr v3: windows per shard side (`--zarr-shard`).
    pub zarr_shard: Option<usize>,
    /// How Parquet tiles are written (GeoParquet, compatible encodings).
    pub parquet: parquet::ParquetOptions,
    /// JSON describing the grid, stored in every Parquet tile's key-value metadata.
    pub grid_json: String,
}

/// A staging format: set up once, write tiles from many threads, finish once.
pub trait TileWriter: Send + Sync {
    /// Writes what does not depend on tiles (Zarr metadata, coordinates). Idempotent.
    ///
    /// # Errors
    /// [`StageError`] naming the object.
    fn begin(&self) -> Result<(), StageError>;

    /// Writes one tile completely and returns its (not yet committed) record.
    ///
    /// # Errors
    /// [`StageError`] naming the tile.
    fn write(&self, tile: &Tile) -> Result<TileRecord, StageError>;

    /// Writes one tile (one unit of work: a window, or a sharded Zarr's shard of windows),
    /// getting each window's values from `compute`, and returns its (not yet committed)
    /// record. By default the tile is one window.
    ///
    /// # Errors
    /// What `compute` returns; [`StageError`] naming the tile.
    fn write_tile(
        &self,
        tile: Window,
        compute: &mut dyn FnMut(Window) -> Result<Tile, TileErrorKind>,
    ) -> Result<TileRecord, TileErrorKind> {
        Ok(self.write(&compute(tile)?)?)
    }

    /// Runs once every tile is committed (consolidated Zarr metadata).
    ///
    /// # Errors
    /// [`StageError`] naming the object.
    fn finish(&self) -> Result<(), StageError>;
}

/// The writer for `format` in dataset folder `ds`.
pub fn writer(format: Format, ds: Store, layout: Layout) -> Box<dyn TileWriter> {
    match format {
        Format::Parquet => Box::new(parquet::ParquetWriter::new(ds, layout)),
        Format::Zarr => Box::new(zarr::ZarrWriter::new(ds, layout)),
    }
}

/// Why one tile of a `convert` or `merge` failed; the tile stays uncommitted.
#[derive(Debug, thiserror::Error)]
#[error("tile {tile}: {kind}")]
pub struct TileFailure {
    /// Tile id.
    pub tile: String,
    /// What went wrong.
    pub kind: TileErrorKind,
}

/// What went wrong with a tile.
#[derive(Debug, thiserror::Error)]
pub enum TileErrorKind {
    /// Opening or reading the source raster failed (convert).
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    /// Reading a tile of an input dataset failed (merge). Boxed as any error, so that the
    /// write loop knows nothing of the commands that use it (data flows one way).
    #[error(transparent)]
    Input(Box<dyn std::error::Error + Send + Sync>),
    /// Encoding, storing or committing the tile failed.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// The worker panicked: a bug, caught so that it costs only this tile.
    #[error("the worker panicked ({0}); this is a bug in rasterstage, please report it")]
    Panic(String),
}
