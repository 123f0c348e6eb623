//! Tile writers: Parquet tiles or a Zarr group, behind one trait (merged.rs: the writers of
//! merged datasets), plus the manifest that records which tiles are committed.

pub(crate) mod cf;
pub mod finalize;
pub mod footer;
pub(crate) mod format;
pub mod geoparquet;
pub(crate) mod keys;
pub(crate) mod lifecycle;
pub mod manifest;
pub(crate) mod merged;
pub mod parquet;
pub(crate) mod read;
pub(crate) mod rows;
pub(crate) mod write_loop;
pub(crate) mod zarr;

use crate::grid::Window;
use crate::store::{Store, StoreError};
use crate::tile::Tile;
pub use manifest::{Format, ZarrVersion};
pub(crate) use manifest::{Manifest, TileRecord};
use write_loop::TileErrorKind;

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
    /// The committed tiles' sums add up to NaN (one tile at +inf, another at -inf): the
    /// complete `dataset.json` is not written, since every reader would refuse it.
    #[error("{0}: the tiles' value sums add up to NaN{NAN_SUM_ADVICE}", NAN_SUM_ADVICE = NAN_SUM_ADVICE)]
    NanSum(String),
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
    pub(crate) fn is_bad_manifest(&self) -> bool {
        matches!(
            self,
            StageError::BadManifest(..) | StageError::Invalid { .. } | StageError::Store(StoreError::TooLarge { .. })
        )
    }
}

/// Why a NaN value sum is refused and what to do, after "... sum to NaN": said by the tile
/// and the dataset refusals alike.
pub(crate) const NAN_SUM_ADVICE: &str = " (the values include both +inf and -inf, or sums that overflow both ways), \
which no load or verify could check; make the infinities nodata (convert --nodata=inf or --nodata=-inf) or replace them in the source";

/// A cell type as staged: its Arrow (Parquet) type and its little-endian Zarr encoding.
pub(crate) trait CellValue: crate::dtype::Sample {
    /// The Arrow type of a Parquet value column.
    type Arrow: arrow_array::ArrowPrimitiveType<Native = Self>;
    /// Reads one little-endian value (Zarr chunks) from the start of `b`.
    fn from_le(b: &[u8]) -> Self;
    /// A Parquet value column of `v`.
    fn array(v: Vec<Self>) -> arrow_array::ArrayRef;
}

macro_rules! cell_value {
    ($($t:ty => $arrow:ident);*) => {$(
        impl CellValue for $t {
            type Arrow = arrow_array::types::$arrow;
            #[inline]
            fn from_le(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b[..std::mem::size_of::<$t>()].try_into().expect("value bytes"))
            }
            fn array(v: Vec<Self>) -> arrow_array::ArrayRef {
                std::sync::Arc::new(arrow_array::PrimitiveArray::<arrow_array::types::$arrow>::from(v))
            }
        }
    )*};
}

cell_value!(u8 => UInt8Type; u16 => UInt16Type; i16 => Int16Type; u32 => UInt32Type; i32 => Int32Type;
    f32 => Float32Type; f64 => Float64Type);

/// A staging format: set up once, write tiles (a converted window's [`Tile`], or a merged
/// window) from many threads, finish once.
pub(crate) trait TileWriter<T = Tile>: Send + Sync {
    /// Writes what does not depend on tiles (Zarr metadata, coordinates). Idempotent.
    ///
    /// # Errors
    /// [`StageError`] naming the object.
    fn begin(&self) -> Result<(), StageError> {
        Ok(())
    }

    /// Writes one tile completely and returns its (not yet committed) record.
    ///
    /// # Errors
    /// [`StageError`] naming the tile.
    fn write(&self, tile: &T) -> Result<TileRecord, StageError>;

    /// Writes one tile (one unit of work: a window, or a sharded Zarr's shard of windows),
    /// getting each window's values from `compute`, and returns its (not yet committed)
    /// record. By default the tile is one window.
    ///
    /// # Errors
    /// What `compute` returns; [`StageError`] naming the tile.
    fn write_tile(
        &self,
        tile: Window,
        compute: &mut dyn FnMut(Window) -> Result<T, TileErrorKind>,
    ) -> Result<TileRecord, TileErrorKind> {
        Ok(self.write(&compute(tile)?)?)
    }

    /// Runs once every tile is committed (consolidated Zarr metadata).
    ///
    /// # Errors
    /// [`StageError`] naming the object.
    fn finish(&self) -> Result<(), StageError> {
        Ok(())
    }
}

/// The tile writer of converted dataset `m` in dataset folder `ds`, in its format
/// (`grid_json`: what each Parquet tile's key-value metadata says of the grid).
pub(crate) fn writer(ds: Store, m: &Manifest, grid_json: String) -> Box<dyn TileWriter> {
    match m.format {
        manifest::StagedFormat::Parquet { geoparquet, compat } => {
            let opts = parquet::ParquetOptions { geoparquet, compat };
            Box::new(parquet::ParquetWriter::new(ds, &m.name, m.grid.clone(), opts, grid_json))
        }
        manifest::StagedFormat::Zarr { .. } => Box::new(zarr::ZarrWriter(zarr::ZarrGroup::of_manifest(ds, m))),
    }
}
