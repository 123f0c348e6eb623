//! Parquet tiles: `tiles/r<row0>_c<col0>.parquet`, one per window, valid cells only.
//!
//! Columns `row_idx INT32, col_idx INT32, x DOUBLE, y DOUBLE, value <type>`, zstd. The grid
//! is in the file's key-value metadata under `rasterstage:grid`, so a tile describes itself.

use super::geoparquet::{self, Extent, GeoEncoding};
use super::{CellValue, StageError, TileRecord, TileWriter};
use crate::dtype::nodata_as;
use crate::grid::Grid;
use crate::store::Store;
use crate::tile::{valid_stats, Tile};
use arrow_array::{ArrayRef, ArrowPrimitiveType, Float64Array, Int32Array, RecordBatch};
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

/// How a dataset's Parquet tiles are written, beyond what every tile holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct ParquetOptions {
    /// GeoParquet: a point geometry column in this encoding, a bbox covering column and the
    /// `geo` metadata.
    pub(crate) geoparquet: Option<GeoEncoding>,
    /// Only the encodings every reader decodes (no BYTE_STREAM_SPLIT, which fastparquet
    /// cannot read), at the cost of larger float tiles.
    pub(crate) compat: bool,
}

/// The Arrow schema of a tile with `value` of type `value`, GeoParquet's columns appended when
/// `geo` is set.
pub(crate) fn tile_schema_with(value: Arrow, geo: Option<GeoEncoding>) -> Schema {
    let mut fields = key_fields();
    fields.push(Field::new("value", value, false));
    fields.extend(geo.into_iter().flat_map(geoparquet::fields));
    Schema::new(fields)
}

/// The columns every tile starts with: `row_idx, col_idx, x, y`.
pub(crate) fn key_fields() -> Vec<Field> {
    let int = |name| Field::new(name, Arrow::Int32, false);
    let float = |name| Field::new(name, Arrow::Float64, false);
    vec![int("row_idx"), int("col_idx"), float("x"), float("y")]
}

/// Writer settings of every tile with `schema`: zstd, the grid JSON in the key-value metadata,
/// delta-encoded `col_idx`, byte-stream-split float values (not when `compat` is set).
pub fn writer_props(grid_json: &str, schema: &Schema, compat: bool) -> WriterProperties {
    let mut b = WriterProperties::builder()
        // Level 1, not 3: tiles are staging data read once or twice, and on the 43200 x 21600
        // Byte benchmark level 1 took 3-5% less CPU for 15% larger tiles. Negative (fast)
        // levels took more instructions here, and gave 35-140% larger tiles.
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("zstd level")))
        .set_created_by(format!("rasterstage {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(vec![KeyValue::new(GRID_KEY.to_string(), grid_json.to_string())]))
        // Column indices grow in steps of one along a row: delta encoding makes them nearly
        // free. Row indices stay constant along a row, long runs that zstd takes as fast as
        // delta encoding does, for the same tile size and 4% fewer instructions. Coordinates
        // repeat row after row, which zstd finds on its own; hashing every value into a
        // dictionary cost more than a third of passthrough's CPU time (measured, see
        // docs/BENCHMARKS.md).
        .set_dictionary_enabled(false)
        .set_column_encoding(ColumnPath::from("col_idx"), Encoding::DELTA_BINARY_PACKED)
        .set_max_row_group_row_count(Some(1 << 20));
    // Float values split into one stream per byte: sums of integers leave whole streams
    // zero and smooth fields leave the exponent streams nearly constant, so zstd has far
    // less to do (Byte sum at factor 2: 15% fewer instructions, 17% smaller tiles; Float32
    // average: a third smaller). Integer columns stay plain or delta: DuckDB reads
    // BYTE_STREAM_SPLIT for FLOAT and DOUBLE only. Coordinates gained nothing from it
    // (measured), so they stay plain.
    for f in schema.fields().iter().filter(|_| !compat) {
        if matches!(f.data_type(), Arrow::Float32 | Arrow::Float64) && !matches!(f.name().as_str(), "x" | "y") {
            b = b.set_column_encoding(ColumnPath::from(f.name().as_str()), Encoding::BYTE_STREAM_SPLIT);
        }
    }
    b.build()
}

/// Closes a tile's writer and returns the file, its float columns declared in the order every
/// reader understands ([`super::footer`]).
///
/// # Errors
/// The writer's, as text.
pub(crate) fn close(writer: ArrowWriter<Vec<u8>>) -> Result<Vec<u8>, String> {
    let mut bytes = writer.into_inner().map_err(|e| e.to_string())?;
    if !keep_total_order() {
        super::footer::type_defined_float_orders(&mut bytes);
    }
    Ok(bytes)
}

/// Whether `RASTERSTAGE_BENCH_KEEP_FLOAT_ORDER` is set: the footer keeps parquet-rs's
/// IEEE-754 total order. Only for measuring what the rewrite costs (docs/BENCHMARKS.md,
/// "Reader options"); such tiles hide their float statistics from pyarrow.
fn keep_total_order() -> bool {
    static KEEP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *KEEP.get_or_init(|| std::env::var_os("RASTERSTAGE_BENCH_KEEP_FLOAT_ORDER").is_some())
}

/// Writes Parquet tiles into a dataset folder.
pub(crate) struct ParquetWriter {
    ds: Store,
    /// Dataset name.
    name: String,
    grid: Grid,
    opts: ParquetOptions,
    /// What each tile's key-value metadata says of the grid.
    grid_json: String,
    /// The CRS as PROJJSON for GeoParquet tiles, found once for all tiles.
    projjson: Result<Option<String>, String>,
}

impl ParquetWriter {
    /// A writer for dataset folder `ds`.
    pub(crate) fn new(ds: Store, name: &str, grid: Grid, opts: ParquetOptions, grid_json: String) -> ParquetWriter {
        let projjson = opts.geoparquet.map_or(Ok(None), |_| geoparquet::projjson(&grid.crs_wkt));
        ParquetWriter { ds, name: name.to_string(), grid, opts, grid_json, projjson }
    }

    /// The tile's Parquet bytes, with the row count and value sum of what they hold.
    fn encode<T: CellValue>(&self, tile: &Tile, values: &[T]) -> Result<(Vec<u8>, u64, f64), String> {
        let w = tile.window;
        let g = &self.grid;
        let (gx, gy) = (g.x_axis(), g.y_axis());
        let nodata: Option<T> = nodata_as(tile.nodata);
        let opts = self.opts;
        let projjson = self.projjson.as_ref().map_err(Clone::clone)?;
        let xs: Vec<f64> = (w.col0..w.col0 + w.cols).map(|c| gx.centre(c)).collect();
        let mut schema = tile_schema_with(T::Arrow::DATA_TYPE, opts.geoparquet);
        let mut geo = None;
        if let Some(enc) = opts.geoparquet {
            // In the Arrow schema, not only the file's key-value metadata: Arrow C++ (pyarrow,
            // GeoPandas reading a folder of tiles) takes a file's metadata from the embedded
            // Arrow schema alone (ARROW-16688). That schema is written first, so the tile's
            // extent is found before its cells are.
            let mut extent = Extent::default();
            for r in 0..w.rows {
                let line = &values[r * w.cols..(r + 1) * w.cols];
                if let (Some(a), Some(b)) =
                    (line.iter().position(|v| v.is_valid(nodata)), line.iter().rposition(|v| v.is_valid(nodata)))
                {
                    extent.add_row(&[xs[a], xs[b]], gy.centre(w.row0 + r));
                }
            }
            let json = geoparquet::metadata(enc, projjson.as_deref(), &extent)?;
            schema = schema
                .with_metadata(std::collections::HashMap::from([(geoparquet::GEO_KEY.to_string(), json.clone())]));
            geo = Some(json);
        }
        let schema: SchemaRef = Arc::new(schema);
        let props = writer_props(&self.grid_json, &schema, opts.compat);
        let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).map_err(|e| e.to_string())?;
        // GeoParquet's own place for it, where GDAL and DuckDB look.
        if let Some(json) = geo {
            writer.append_key_value_metadata(KeyValue::new(geoparquet::GEO_KEY.to_string(), json));
        }
        let mut cols = Columns::<T>::new(BATCH_ROWS + w.cols, opts.geoparquet);
        // Column offsets of one row's valid cells.
        let mut keep = vec![0u32; w.cols];
        for r in 0..w.rows {
            let line = &values[r * w.cols..(r + 1) * w.cols];
            // Branch-free compaction: an invalid cell's offset is written, then overwritten.
            let mut n = 0;
            for (c, &v) in line.iter().enumerate() {
                keep[n] = c as u32;
                n += usize::from(v.is_valid(nodata));
            }
            cols.push_row((w.row0 + r) as i32, gy.centre(w.row0 + r), w.col0 as i32, &xs, line, &keep[..n]);
            if cols.row.len() >= BATCH_ROWS {
                writer.write(&cols.take_batch(&schema)?).map_err(|e| e.to_string())?;
            }
        }
        if !cols.row.is_empty() {
            writer.write(&cols.take_batch(&schema)?).map_err(|e| e.to_string())?;
        }
        let (rows, sum) = valid_stats(values, nodata);
        Ok((close(writer)?, rows, sum))
    }
}

/// One record batch being filled, column by column.
struct Columns<T> {
    row: Vec<i32>,
    col: Vec<i32>,
    x: Vec<f64>,
    y: Vec<f64>,
    v: Vec<T>,
    /// GeoParquet's columns, built from x and y.
    geo: Option<GeoEncoding>,
    /// Capacity of each column: a batch's rows plus one more output row, so that filling a
    /// batch never reallocates.
    capacity: usize,
}

impl<T: CellValue> Columns<T> {
    fn new(n: usize, geo: Option<GeoEncoding>) -> Columns<T> {
        let (row, col) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (x, y, v) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        Columns { row, col, x, y, v, geo, capacity: n }
    }

    /// Appends the cells `keep` (offsets into `line`, ascending) of output row `row`, whose
    /// first column is `col0`, cell centres `xs` and `y`.
    fn push_row(&mut self, row: i32, y: f64, col0: i32, xs: &[f64], line: &[T], keep: &[u32]) {
        let n = keep.len();
        if n == line.len() {
            // A row without nodata (land, or any gap-free raster) is copied as it is.
            self.col.extend(col0..col0 + n as i32);
            self.x.extend_from_slice(xs);
            self.v.extend_from_slice(line);
        } else {
            self.col.extend(keep.iter().map(|&c| col0 + c as i32));
            self.x.extend(keep.iter().map(|&c| xs[c as usize]));
            self.v.extend(keep.iter().map(|&c| line[c as usize]));
        }
        self.row.resize(self.row.len() + n, row);
        self.y.resize(self.y.len() + n, y);
    }

    fn take_batch(&mut self, schema: &SchemaRef) -> Result<RecordBatch, String> {
        let Columns { row, col, x, y, v, geo, .. } = std::mem::replace(self, Columns::new(self.capacity, self.geo));
        let (x, y) = (Arc::new(Float64Array::from(x)), Arc::new(Float64Array::from(y)));
        let mut cols: Vec<ArrayRef> =
            vec![Arc::new(Int32Array::from(row)), Arc::new(Int32Array::from(col)), x.clone(), y.clone(), T::array(v)];
        if let Some(enc) = geo {
            cols.extend(geoparquet::columns(enc, &x, &y));
        }
        RecordBatch::try_new(schema.clone(), cols).map_err(|e| e.to_string())
    }
}

impl TileWriter for ParquetWriter {
    fn write(&self, tile: &Tile) -> Result<TileRecord, StageError> {
        let (bytes, row_count, value_sum) = crate::with_tile_values!(&tile.values, v => self.encode(tile, v))
            .map_err(|reason| StageError::Encode { dataset: self.name.clone(), tile: tile.window.tile_id(), reason })?;
        let mut rec = TileRecord::new(tile.window, row_count, value_sum);
        // A window without valid cells stores nothing.
        if row_count > 0 {
            rec.store(&self.ds, vec![(super::keys::parquet_tile(&rec.id), bytes)])?;
        }
        Ok(rec)
    }
}
