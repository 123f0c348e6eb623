//! Tiles of a merged dataset (written by `merge`): `row_idx, col_idx, x, y`, then one
//! nullable column per input dataset, in the input's own type.
//!
//! A window's values arrive as one dense f64 buffer per column, NaN where the input has no
//! valid cell: f64 holds every staged type exactly and NaN is never a valid staged value, so
//! the buffer loses nothing and needs no separate mask.

use super::manifest::Column;
use super::parquet::writer_props;
use super::read::{arrow_type, CellValue};
use super::{StageError, TileRecord};
use crate::grid::{Grid, Window};
use crate::store::Store;
use arrow_array::{ArrayRef, Float64Array, Int32Array, PrimitiveArray, RecordBatch};
use arrow_schema::{DataType as Arrow, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use std::sync::Arc;

/// Rows per record batch handed to the Parquet writer.
const BATCH_ROWS: usize = 64 * 1024;

/// The Arrow schema of a merged tile.
pub fn schema(columns: &[Column]) -> Schema {
    let mut fields = vec![
        Field::new("row_idx", Arrow::Int32, false),
        Field::new("col_idx", Arrow::Int32, false),
        Field::new("x", Arrow::Float64, false),
        Field::new("y", Arrow::Float64, false),
    ];
    fields.extend(columns.iter().map(|c| Field::new(&c.name, arrow_type(c.dtype), true)));
    Schema::new(fields)
}

/// One merged window: a dense buffer per column and the cells to write.
#[derive(Debug)]
pub struct MergedTile<'a> {
    /// Where the window lies on the merged grid.
    pub window: Window,
    /// One buffer of `window.cells()` values per column, row-major, NaN = no value.
    pub values: &'a [Vec<f64>],
    /// Positions (row-major, within the window) of the cells to write, ascending.
    pub keep: &'a [u32],
}

/// Writes merged Parquet tiles into a dataset folder.
pub struct MergedParquetWriter {
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
    pub fn new(ds: Store, name: &str, grid: Grid, columns: Vec<Column>, grid_json: String) -> MergedParquetWriter {
        let schema = Arc::new(schema(&columns));
        MergedParquetWriter { ds, name: name.to_string(), grid, columns, schema, grid_json }
    }

    /// Writes one window completely and returns its (not yet committed) record: row count =
    /// cells kept, value sum = every non-null value, row by row, columns in order.
    ///
    /// # Errors
    /// [`StageError::Encode`] naming the tile, or [`StageError::Store`].
    pub fn write(&self, tile: &MergedTile<'_>) -> Result<TileRecord, StageError> {
        let w = tile.window;
        let id = w.tile_id();
        let mut value_sum = 0.0;
        for &p in tile.keep {
            for col in tile.values {
                let v = col[p as usize];
                if !v.is_nan() {
                    value_sum += v;
                }
            }
        }
        let mut rec = TileRecord::new(w, tile.keep.len() as u64, value_sum);
        if tile.keep.is_empty() {
            return Ok(rec);
        }
        let bytes = self.encode(tile).map_err(|reason| StageError::Encode {
            dataset: self.name.clone(),
            tile: id.clone(),
            reason,
        })?;
        rec.store(&self.ds, format!("tiles/{id}.parquet"), bytes)?;
        Ok(rec)
    }

    fn encode(&self, tile: &MergedTile<'_>) -> Result<Vec<u8>, String> {
        let w = tile.window;
        let props = writer_props(&self.grid_json);
        let mut writer =
            ArrowWriter::try_new(Vec::new(), self.schema.clone(), Some(props)).map_err(|e| e.to_string())?;
        for part in tile.keep.chunks(BATCH_ROWS) {
            let cell = |p: u32| (w.row0 + p as usize / w.cols, w.col0 + p as usize % w.cols);
            let mut cols: Vec<ArrayRef> = vec![
                Arc::new(Int32Array::from_iter_values(part.iter().map(|&p| cell(p).0 as i32))),
                Arc::new(Int32Array::from_iter_values(part.iter().map(|&p| cell(p).1 as i32))),
                Arc::new(Float64Array::from_iter_values(part.iter().map(|&p| self.grid.centre_x(cell(p).1)))),
                Arc::new(Float64Array::from_iter_values(part.iter().map(|&p| self.grid.centre_y(cell(p).0)))),
            ];
            for (c, values) in self.columns.iter().zip(tile.values) {
                cols.push(crate::with_sample_type!(c.dtype, T => nullable::<T>(values, part)));
            }
            let batch = RecordBatch::try_new(self.schema.clone(), cols).map_err(|e| e.to_string())?;
            writer.write(&batch).map_err(|e| e.to_string())?;
        }
        writer.into_inner().map_err(|e| e.to_string())
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
