//! Parquet tiles: `tiles/r<row0>_c<col0>.parquet`, one per window, valid cells only.
//!
//! Columns `row_idx INT32, col_idx INT32, x DOUBLE, y DOUBLE, value <type>`, zstd. The grid
//! is in the file's key-value metadata under `rasterstage:grid`, so a tile describes itself.

use super::{Layout, StageError, TileRecord, TileWriter};
use crate::dtype::{nodata_as, Sample};
use crate::store::Store;
use crate::tile::Tile;
use arrow_array::{ArrayRef, Float64Array, Int32Array, PrimitiveArray, RecordBatch};
use arrow_schema::{DataType as Arrow, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use std::sync::Arc;

/// Key of the grid JSON in each tile's key-value metadata.
pub const GRID_KEY: &str = "rasterstage:grid";

/// Rows per record batch handed to the Parquet writer (bounds the arrays held at once).
const BATCH_ROWS: usize = 64 * 1024;

/// A Rust cell type as an Arrow column.
pub trait ArrowValue: Sample {
    /// The Arrow type of the `value` column.
    const ARROW: Arrow;
    /// Builds the column.
    fn array(v: Vec<Self>) -> ArrayRef;
}

macro_rules! arrow_value {
    ($($t:ty => $a:ident, $p:ident);*) => {$(
        impl ArrowValue for $t {
            const ARROW: Arrow = Arrow::$a;
            fn array(v: Vec<Self>) -> ArrayRef {
                Arc::new(PrimitiveArray::<arrow_array::types::$p>::from(v))
            }
        }
    )*};
}

arrow_value!(u8 => UInt8, UInt8Type; u16 => UInt16, UInt16Type; i16 => Int16, Int16Type;
    u32 => UInt32, UInt32Type; i32 => Int32, Int32Type; f32 => Float32, Float32Type;
    f64 => Float64, Float64Type);

/// The Arrow schema of a tile with `value` of type `value`.
pub fn tile_schema(value: Arrow) -> Schema {
    Schema::new(vec![
        Field::new("row_idx", Arrow::Int32, false),
        Field::new("col_idx", Arrow::Int32, false),
        Field::new("x", Arrow::Float64, false),
        Field::new("y", Arrow::Float64, false),
        Field::new("value", value, false),
    ])
}

/// Writer settings of every tile: zstd, the grid JSON in the key-value metadata, delta-encoded
/// column indices.
pub fn writer_props(grid_json: &str) -> WriterProperties {
    WriterProperties::builder()
        // Level 1, not 3: tiles are staging data read once or twice, and on the 43200 x 21600
        // Byte benchmark level 1 took 3-5% less CPU for 15% larger tiles.
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("zstd level")))
        .set_created_by(format!("rasterstage {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(vec![KeyValue::new(GRID_KEY.to_string(), grid_json.to_string())]))
        // Indices grow in steps of one along a row and stay constant down it: delta encoding
        // makes them nearly free. Coordinates repeat row after row, which zstd finds on its
        // own; hashing every value into a dictionary cost more than a third of passthrough's
        // CPU time (measured, see docs/BENCHMARKS.md).
        .set_dictionary_enabled(false)
        .set_column_encoding(ColumnPath::from("row_idx"), Encoding::DELTA_BINARY_PACKED)
        .set_column_encoding(ColumnPath::from("col_idx"), Encoding::DELTA_BINARY_PACKED)
        .set_max_row_group_row_count(Some(1 << 20))
        .build()
}

/// Writes Parquet tiles into a dataset folder.
pub struct ParquetWriter {
    ds: Store,
    layout: Layout,
}

impl ParquetWriter {
    /// A writer for dataset folder `ds`.
    pub fn new(ds: Store, layout: Layout) -> ParquetWriter {
        ParquetWriter { ds, layout }
    }

    fn props(&self) -> WriterProperties {
        writer_props(&self.layout.grid_json)
    }

    /// The tile's Parquet bytes, with the row count and value sum of what they hold (counted
    /// here, in the same row-major order as [`Tile::stats`], to save a second pass).
    fn encode<T: ArrowValue>(&self, tile: &Tile, values: &[T]) -> Result<(Vec<u8>, u64, f64), String> {
        let w = tile.window;
        let g = &self.layout.grid;
        let nodata: Option<T> = nodata_as(tile.nodata);
        let schema: SchemaRef = Arc::new(tile_schema(T::ARROW));
        let mut writer =
            ArrowWriter::try_new(Vec::new(), schema.clone(), Some(self.props())).map_err(|e| e.to_string())?;
        let xs: Vec<f64> = (w.col0..w.col0 + w.cols).map(|c| g.centre_x(c)).collect();
        let mut cols = Columns::<T>::default();
        let (mut rows, mut sum) = (0u64, 0.0f64);
        for r in 0..w.rows {
            let row = (w.row0 + r) as i32;
            let y = g.centre_y(w.row0 + r);
            let line = &values[r * w.cols..(r + 1) * w.cols];
            for (c, &v) in line.iter().enumerate() {
                if v.is_valid(nodata) {
                    cols.push(row, (w.col0 + c) as i32, xs[c], y, v);
                    rows += 1;
                    sum += v.to_f64();
                }
            }
            if cols.len() >= BATCH_ROWS {
                writer.write(&cols.take_batch(&schema)?).map_err(|e| e.to_string())?;
            }
        }
        if cols.len() > 0 {
            writer.write(&cols.take_batch(&schema)?).map_err(|e| e.to_string())?;
        }
        Ok((writer.into_inner().map_err(|e| e.to_string())?, rows, sum))
    }
}

#[derive(Default)]
struct Columns<T> {
    row: Vec<i32>,
    col: Vec<i32>,
    x: Vec<f64>,
    y: Vec<f64>,
    v: Vec<T>,
}

impl<T: ArrowValue> Columns<T> {
    #[inline]
    fn push(&mut self, r: i32, c: i32, x: f64, y: f64, v: T) {
        self.row.push(r);
        self.col.push(c);
        self.x.push(x);
        self.y.push(y);
        self.v.push(v);
    }

    fn len(&self) -> usize {
        self.row.len()
    }

    fn take_batch(&mut self, schema: &SchemaRef) -> Result<RecordBatch, String> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(fresh(&mut self.row))),
            Arc::new(Int32Array::from(fresh(&mut self.col))),
            Arc::new(Float64Array::from(fresh(&mut self.x))),
            Arc::new(Float64Array::from(fresh(&mut self.y))),
            T::array(fresh(&mut self.v)),
        ];
        RecordBatch::try_new(schema.clone(), cols).map_err(|e| e.to_string())
    }
}

/// Takes the column's values, leaving a vector already sized for the next batch so that
/// filling it never reallocates.
fn fresh<V>(v: &mut Vec<V>) -> Vec<V> {
    std::mem::replace(v, Vec::with_capacity(BATCH_ROWS))
}

impl TileWriter for ParquetWriter {
    fn begin(&self) -> Result<(), StageError> {
        Ok(())
    }

    fn write(&self, tile: &Tile) -> Result<TileRecord, StageError> {
        let (bytes, row_count, value_sum) =
            crate::with_tile_values!(&tile.values, v => self.encode(tile, v)).map_err(|reason| StageError::Encode {
                dataset: self.layout.name.clone(),
                tile: tile.window.tile_id(),
                reason,
            })?;
        let mut rec = TileRecord::new(tile.window, row_count, value_sum);
        // A window without valid cells stores nothing.
        if row_count > 0 {
            let key = format!("tiles/{}.parquet", rec.id);
            rec.store(&self.ds, key, bytes)?;
        }
        Ok(rec)
    }

    fn finish(&self) -> Result<(), StageError> {
        Ok(())
    }
}
