//! Tiles of a merged dataset (written by `merge`), in one of two formats:
//! - Parquet: `row_idx, col_idx, x, y`, then one nullable column per input dataset, in the
//!   input's own type; only the cells kept are rows.
//! - Zarr: one group with one 2-D array per input dataset (its own type, fill value = its
//!   nodata, or NaN for a float without one) sharing the `x`/`y` coordinates; a window is one
//!   chunk of every array, and the cells not kept hold the fill value in every array.
//!
//! A window's values arrive as one dense f64 buffer per column, NaN where the input has no
//! valid cell: f64 holds every staged type exactly and NaN is never a valid staged value, so
//! the buffer loses nothing and needs no separate mask.

use super::manifest::{Column, How, Manifest};
use super::parquet::writer_props;
use super::read::{
    arrow_type, bad, dense_f64, parquet_column, same_columns, visit_f64, CellOrder, CellValue, DecodeError, TileShape,
};
use super::zarr::ZarrGroup;
use super::{Format, StageError, TileRecord, TileWriter};
use crate::dtype::Sample;
use crate::grid::{Grid, Window};
use crate::store::Store;
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, Float64Array, Int32Array, PrimitiveArray, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use std::sync::Arc;

/// Positions of the cells to keep: any input valid (outer) or every input valid (inner).
pub(crate) fn keep_cells(values: &[Vec<f64>], cells: usize, how: How) -> Vec<u32> {
    let keep = |p: usize| match how {
        How::Outer => values.iter().any(|b| !b[p].is_nan()),
        How::Inner => values.iter().all(|b| !b[p].is_nan()),
    };
    (0..cells).filter(|&p| keep(p)).map(|p| p as u32).collect()
}

/// Rows per record batch handed to the Parquet writer.
const BATCH_ROWS: usize = 64 * 1024;

/// The Arrow schema of a merged tile.
pub(crate) fn schema(columns: &[Column]) -> Schema {
    let mut fields = super::parquet::key_fields();
    fields.extend(columns.iter().map(|c| Field::new(&c.name, arrow_type(c.dtype), true)));
    Schema::new(fields)
}

/// One merged window: a dense buffer per column and the cells to write.
#[derive(Debug)]
pub(crate) struct MergedTile<'a> {
    /// Where the window lies on the merged grid.
    pub(crate) window: Window,
    /// One buffer of `window.cells()` values per column, row-major, NaN = no value.
    pub(crate) values: &'a [Vec<f64>],
    /// Positions (row-major, within the window) of the cells to write, ascending.
    pub(crate) keep: &'a [u32],
}

impl MergedTile<'_> {
    /// The window's record before anything is stored, the same in both formats: row count =
    /// cells kept, value sum = every non-null value, row by row, columns in order.
    pub(crate) fn record(&self) -> TileRecord {
        let values = self.keep.iter().flat_map(|&p| self.values.iter().map(move |col| col[p as usize]));
        let value_sum = values.filter(|v| !v.is_nan()).fold(0.0, |sum, v| sum + v);
        TileRecord::new(self.window, self.keep.len() as u64, value_sum)
    }
}

/// A merged-dataset format: a [`TileWriter`] of merged windows.
pub(crate) trait MergedWriter: for<'a> TileWriter<MergedTile<'a>> {}

impl<W: for<'a> TileWriter<MergedTile<'a>>> MergedWriter for W {}

/// Writes merged Parquet tiles into a dataset folder.
pub(crate) struct MergedParquetWriter {
    ds: Store,
    name: String,
    grid: Grid,
    columns: Vec<Column>,
    schema: SchemaRef,
    grid_json: String,
}

impl MergedParquetWriter {
    /// A writer for the merged dataset `name` in folder `ds`; `grid_json` goes into every
    /// tile's key-value metadata.
    pub(crate) fn new(
        ds: Store,
        name: &str,
        grid: Grid,
        columns: Vec<Column>,
        grid_json: String,
    ) -> MergedParquetWriter {
        let schema = Arc::new(schema(&columns));
        MergedParquetWriter { ds, name: name.to_string(), grid, columns, schema, grid_json }
    }

    fn encode(&self, tile: &MergedTile<'_>) -> Result<Vec<u8>, String> {
        let w = tile.window;
        let props = writer_props(&self.grid_json, &self.schema, false);
        let mut writer =
            ArrowWriter::try_new(Vec::new(), self.schema.clone(), Some(props)).map_err(|e| e.to_string())?;
        let (gx, gy) = (self.grid.x_axis(), self.grid.y_axis());
        for part in tile.keep.chunks(BATCH_ROWS) {
            let cell = |p: u32| (w.row0 + p as usize / w.cols, w.col0 + p as usize % w.cols);
            let mut cols: Vec<ArrayRef> = vec![
                Arc::new(Int32Array::from_iter_values(part.iter().map(|&p| cell(p).0 as i32))),
                Arc::new(Int32Array::from_iter_values(part.iter().map(|&p| cell(p).1 as i32))),
                Arc::new(Float64Array::from_iter_values(part.iter().map(|&p| gx.centre(cell(p).1)))),
                Arc::new(Float64Array::from_iter_values(part.iter().map(|&p| gy.centre(cell(p).0)))),
            ];
            for (c, values) in self.columns.iter().zip(tile.values) {
                cols.push(crate::with_sample_type!(c.dtype, T => nullable::<T>(values, part)));
            }
            let batch = RecordBatch::try_new(self.schema.clone(), cols).map_err(|e| e.to_string())?;
            writer.write(&batch).map_err(|e| e.to_string())?;
        }
        super::parquet::close(writer)
    }
}

impl TileWriter<MergedTile<'_>> for MergedParquetWriter {
    fn write(&self, tile: &MergedTile<'_>) -> Result<TileRecord, StageError> {
        let mut rec = tile.record();
        if tile.keep.is_empty() {
            return Ok(rec);
        }
        let bytes = self.encode(tile).map_err(|reason| StageError::Encode {
            dataset: self.name.clone(),
            tile: rec.id.clone(),
            reason,
        })?;
        rec.store(&self.ds, vec![(super::keys::parquet_tile(&rec.id), bytes)])?;
        Ok(rec)
    }
}

/// An input that cannot be an array of a merged Zarr group.
#[derive(Debug, thiserror::Error)]
pub enum ZarrInputError {
    /// An integer input without (representable) nodata: every value may be data, so no fill
    /// value can mark the cells it does not cover.
    #[error("dataset {name} is {dtype} without a nodata value, so its merged Zarr array has no fill value for the cells it does not cover: convert it again with --nodata <a value it never takes>, or merge with --format parquet (which has NULL)")]
    NoFill {
        /// Input dataset.
        name: String,
        /// Its type.
        dtype: String,
    },
    /// An input named like the group's CRS variable.
    #[error("dataset spatial_ref cannot be an array of a merged Zarr group (the CRS variable has that name): convert it under another --name, or merge with --format parquet")]
    SpatialRef,
}

/// Writes a merged dataset as one Zarr group: a chunk of every input's array per window.
pub(crate) struct MergedZarrWriter {
    group: ZarrGroup,
    fills: Vec<f64>,
}

impl MergedZarrWriter {
    /// The writer of merged dataset `m` (format Zarr, with `columns`) in folder `ds`.
    ///
    /// # Errors
    /// [`ZarrInputError`] naming the input that cannot be an array.
    pub(crate) fn new(ds: Store, m: &Manifest) -> Result<MergedZarrWriter, ZarrInputError> {
        let group = ZarrGroup::of_manifest(ds, m);
        let fills = group
            .arrays
            .iter()
            .map(|a| {
                if a.name == "spatial_ref" {
                    return Err(ZarrInputError::SpatialRef);
                }
                a.fill().ok_or_else(|| ZarrInputError::NoFill { name: a.name.clone(), dtype: a.dtype.name().into() })
            })
            .collect::<Result<_, _>>()?;
        Ok(MergedZarrWriter { group, fills })
    }
}

impl TileWriter<MergedTile<'_>> for MergedZarrWriter {
    fn begin(&self) -> Result<(), StageError> {
        self.group.begin()
    }

    fn write(&self, tile: &MergedTile<'_>) -> Result<TileRecord, StageError> {
        let mut rec = tile.record();
        if tile.keep.is_empty() {
            // Missing chunks read as the fill value: nothing kept, nothing to write.
            return Ok(rec);
        }
        let w = tile.window;
        // Under --how inner a cell not kept may still hold values of some inputs; it gets the
        // fill value in every array, so readers keep a cell where any array has a value and
        // see exactly the cells (rows) the Parquet merge has.
        let mut kept = vec![false; w.cells()];
        for &p in tile.keep {
            kept[p as usize] = true;
        }
        let mut parts = Vec::with_capacity(self.fills.len());
        for ((a, values), &fill) in self.group.arrays.iter().zip(tile.values).zip(&self.fills) {
            let raw = crate::with_sample_type!(a.dtype, T => {
                let cells: Vec<T> =
                    values.iter().zip(&kept).map(|(&v, &k)| T::from_f64(if k && !v.is_nan() { v } else { fill })).collect();
                self.group.chunk_bytes(w, &cells, T::from_f64(fill))
            });
            parts.push((self.group.tile_key(&a.name, w), self.group.compress(&raw, &rec.id)?));
        }
        rec.store(&self.group.ds, parts)?;
        Ok(rec)
    }

    fn finish(&self) -> Result<(), StageError> {
        self.group.finish()
    }
}

/// The column of `values` at `keep`, NULL where NaN, narrowed to the input's type (exact:
/// the values came from that type).
fn nullable<T: CellValue>(values: &[f64], keep: &[u32]) -> ArrayRef {
    let it = keep.iter().map(|&p| {
        let v = values[p as usize];
        (!v.is_nan()).then(|| T::from_f64(v))
    });
    Arc::new(PrimitiveArray::<T::Arrow>::from_iter(it))
}

/// [`visit_f64`] of column `index` of a merged tile, from its objects `parts` (a Parquet
/// tile, or the window's Zarr chunk of each column): the column's non-null cells.
///
/// # Errors
/// As [`super::read::visit_cells`].
pub(crate) fn visit_column<F>(
    format: Format,
    parts: &[Bytes],
    shape: &TileShape<'_>,
    columns: &[Column],
    index: usize,
    mut f: F,
) -> Result<(), DecodeError>
where
    F: FnMut(i32, i32, f64) -> std::io::Result<()>,
{
    let c = &columns[index];
    let shape = TileShape { dtype: c.dtype, nodata: c.nodata, ..*shape };
    match format {
        Format::Zarr => visit_f64(Format::Zarr, &parts[index], &shape, None, f),
        Format::Parquet => crate::with_sample_type!(c.dtype, T => parquet_column::<T, _>(
            &parts[0], &shape, &schema(columns), "merged schema", 4 + index, true, |r, col, v| f(r, col, v.to_f64())
        )),
    }
}

/// Visits every row of a merged tile in the merged Parquet tile's order: `f(row_idx,
/// col_idx, x, y, values)`, one value per entry of `columns` (`None`: no value, NULL), exact
/// in f64. A Parquet tile (`parts[0]`) is checked against the merged schema and its cells
/// against the window ([`CellOrder`]); Zarr (`parts`: the window's chunk of each column)
/// yields the cells [`keep_cells`] keeps under `outer` (the writer gave the cells not kept the
/// fill value in every column; an inner merge only wrote fewer of them).
///
/// # Errors
/// [`DecodeError::Bad`] for an unreadable tile, other columns, a row outside the window, or
/// a chunk count other than the column count; [`DecodeError::Sink`] from `f`.
pub(crate) fn visit_rows<F>(
    format: Format,
    parts: &[Bytes],
    shape: &TileShape<'_>,
    columns: &[Column],
    mut f: F,
) -> Result<(), DecodeError>
where
    F: FnMut(i32, i32, f64, f64, &[Option<f64>]) -> std::io::Result<()>,
{
    let (gx, gy) = (shape.grid.x_axis(), shape.grid.y_axis());
    let mut values: Vec<Option<f64>> = vec![None; columns.len()];
    match format {
        Format::Parquet => {
            let bytes = parts.first().cloned().unwrap_or_default();
            let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(bad)?;
            same_columns(builder.schema(), &schema(columns), "merged schema")?;
            let reader = builder.with_batch_size(BATCH_ROWS).build().map_err(bad)?;
            let mut order = CellOrder::new(shape)?;
            for batch in reader {
                let batch = batch.map_err(bad)?;
                if batch.columns()[..4].iter().any(|c| c.null_count() > 0) {
                    return Err(bad("null row_idx, col_idx, x or y in a merged tile"));
                }
                let row = batch.column(0).as_primitive::<Int32Type>();
                let col = batch.column(1).as_primitive::<Int32Type>();
                for i in 0..batch.num_rows() {
                    let (r, c) = (row.value(i), col.value(i));
                    order.next(r, c)?;
                    for (j, (slot, column)) in values.iter_mut().zip(columns).enumerate() {
                        let a = batch.column(4 + j);
                        *slot = crate::with_sample_type!(column.dtype, T => {
                            let a = a.as_primitive::<<T as CellValue>::Arrow>();
                            (!a.is_null(i)).then(|| a.value(i).to_f64())
                        });
                    }
                    // In the window, so non-negative.
                    f(r, c, gx.centre(c as usize), gy.centre(r as usize), &values).map_err(DecodeError::Sink)?;
                }
            }
            Ok(())
        }
        Format::Zarr => {
            if parts.len() != columns.len() {
                return Err(bad(format!("{} chunks for {} columns", parts.len(), columns.len())));
            }
            let dense = parts
                .iter()
                .zip(columns)
                .map(|(b, c)| dense_f64(Format::Zarr, b, &TileShape { dtype: c.dtype, nodata: c.nodata, ..*shape }))
                .collect::<Result<Vec<_>, _>>()?;
            // The window's bounds fit int4 (checked), and so does every cell inside it.
            CellOrder::new(shape)?;
            for p in keep_cells(&dense, shape.cells.cells(), How::Outer) {
                let p = p as usize;
                let (r, c) = (shape.cells.row0 + p / shape.cells.cols, shape.cells.col0 + p % shape.cells.cols);
                for (slot, d) in values.iter_mut().zip(&dense) {
                    *slot = (!d[p].is_nan()).then_some(d[p]);
                }
                f(r as i32, c as i32, gx.centre(c), gy.centre(r), &values).map_err(DecodeError::Sink)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_kept_nan_is_not() {
        let a = vec![0.0, f64::NAN, 2.0, f64::NAN];
        let b = vec![f64::NAN, f64::NAN, 0.0, 5.0];
        assert_eq!(keep_cells(&[a.clone(), b.clone()], 4, How::Outer), vec![0, 2, 3]);
        assert_eq!(keep_cells(&[a, b], 4, How::Inner), vec![2]);
    }
}
