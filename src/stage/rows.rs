//! The rows of one committed tile, whatever its format and kind: the one place that picks a
//! decoder for a reader that only wants rows (`load`), so no reader outside `stage` matches
//! on a format.

use super::manifest::{Column, Manifest, TileRecord};
use super::read::{visit_cells, CellValue, DecodeError, TileShape};
use super::Format;
use bytes::Bytes;

/// How a committed tile's rows read ([`tile_rows`]).
pub(crate) enum TileRows<'a> {
    /// A converted raster's tile: its valid cells, one value each, in the dataset's type.
    Cells(Cells<'a>),
    /// A merged tile: one row per cell kept, one optional value per column.
    Merged(MergedRows<'a>),
}

/// The valid cells of a converted raster's tile.
pub(crate) struct Cells<'a> {
    format: Format,
    bytes: &'a Bytes,
    /// The tile's window and grid, and the type of its values (the `T` of [`Cells::visit`]).
    pub(crate) shape: TileShape<'a>,
}

impl Cells<'_> {
    /// Calls `f(row_idx, col_idx, value)` for every valid cell, row-major.
    ///
    /// # Errors
    /// As [`visit_cells`].
    pub(crate) fn visit<T, F>(&self, f: F) -> Result<(), DecodeError>
    where
        T: CellValue,
        F: FnMut(i32, i32, T) -> std::io::Result<()>,
    {
        visit_cells::<T, F>(self.format, self.bytes, &self.shape, None, f)
    }
}

/// The rows of a merged tile.
pub(crate) struct MergedRows<'a> {
    format: Format,
    parts: &'a [Bytes],
    shape: TileShape<'a>,
    /// The value columns, in order.
    pub(crate) columns: &'a [Column],
}

impl MergedRows<'_> {
    /// Calls `f(row_idx, col_idx, x, y, values)` for every row, as
    /// [`super::merged::visit_rows`].
    ///
    /// # Errors
    /// As [`super::merged::visit_rows`].
    pub(crate) fn visit<F>(&self, f: F) -> Result<(), DecodeError>
    where
        F: FnMut(i32, i32, f64, f64, &[Option<f64>]) -> std::io::Result<()>,
    {
        super::merged::visit_rows(self.format, self.parts, &self.shape, self.columns, f)
    }
}

/// How committed tile `t` of dataset `m` reads from `parts`, its objects as
/// [`super::read::fetch_tile`] returns them (one, or a merged Zarr window's chunk of each
/// column).
pub(crate) fn tile_rows<'a>(m: &'a Manifest, t: &TileRecord, parts: &'a [Bytes]) -> TileRows<'a> {
    let (format, shape) = (m.format.format(), TileShape::of(m, t));
    match m.columns() {
        None => TileRows::Cells(Cells { format, bytes: &parts[0], shape }),
        Some(columns) => TileRows::Merged(MergedRows { format, parts, shape, columns }),
    }
}
