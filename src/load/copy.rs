//! Binary COPY: rows encoded straight into one reusable buffer, and the two tile decoders
//! (Parquet, Zarr chunk) that feed it.
//!
//! `BinaryCopyInWriter::write` boxes every value and goes through `ToSql` per field, which is
//! minutes for a few million rows; writing the format by hand is a few memcpys per row.
//! Format: header `PGCOPY\n\xff\r\n\0`, flags i32 0, extension length i32 0; per row a field
//! count i16 then each field as i32 length + big-endian bytes; trailer i16 -1.

use crate::dtype::{nodata_as, DataType, Sample};
use crate::grid::Grid;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type};
use arrow_array::{Array, ArrowPrimitiveType};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The binary COPY signature, flags and header-extension length.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// End of data.
pub const TRAILER: &[u8] = &(-1i16).to_be_bytes();
/// The buffer is handed to the connection once it holds this much.
pub const FLUSH_BYTES: usize = 1 << 20;
/// Rows per Parquet record batch read at a time.
const BATCH_ROWS: usize = 64 * 1024;

/// A cell type as the PostgreSQL column that holds it (see [`DataType::postgres`]).
pub trait PgValue: Sample {
    /// The Arrow type of the Parquet `value` column.
    type Arrow: ArrowPrimitiveType<Native = Self>;
    /// Byte length of the PostgreSQL value.
    const LEN: usize;
    /// Appends the big-endian PostgreSQL bytes.
    fn put(self, out: &mut Vec<u8>);
    /// Reads one little-endian value (Zarr chunks) from the start of `b`.
    fn from_le(b: &[u8]) -> Self;
}

macro_rules! pg_value {
    ($($t:ty => $arrow:ident, $pg:ty);*) => {$(
        impl PgValue for $t {
            type Arrow = arrow_array::types::$arrow;
            const LEN: usize = std::mem::size_of::<$pg>();
            #[inline]
            fn put(self, out: &mut Vec<u8>) {
                // Widening to the column type is lossless (u8 -> int2, u16 -> int4, u32 -> int8).
                out.extend_from_slice(&(self as $pg).to_be_bytes());
            }
            #[inline]
            fn from_le(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b[..std::mem::size_of::<$t>()].try_into().expect("value bytes"))
            }
        }
    )*};
}

pg_value!(u8 => UInt8Type, i16; u16 => UInt16Type, i32; i16 => Int16Type, i16; u32 => UInt32Type, i64;
    i32 => Int32Type, i32; f32 => Float32Type, f32; f64 => Float64Type, f64);

/// A binary COPY stream under construction, with the row count and value sum of what it
/// holds (checked against dataset.json before the tile commits).
#[derive(Debug, Default)]
pub struct CopyEncoder {
    buf: Vec<u8>,
    /// Rows encoded since [`CopyEncoder::begin`].
    pub rows: u64,
    /// Sum of the values encoded, in encoding order.
    pub value_sum: f64,
}

impl CopyEncoder {
    /// An encoder with an empty buffer.
    pub fn new() -> CopyEncoder {
        CopyEncoder { buf: Vec::with_capacity(FLUSH_BYTES + 4096), rows: 0, value_sum: 0.0 }
    }

    /// Starts a new stream: clears the buffer and counters and writes the header.
    pub fn begin(&mut self) {
        self.buf.clear();
        self.rows = 0;
        self.value_sum = 0.0;
        self.buf.extend_from_slice(HEADER);
    }

    /// Appends one row `(row_idx, col_idx, x, y, value)`.
    #[inline]
    pub fn row<T: PgValue>(&mut self, row: i32, col: i32, x: f64, y: f64, v: T) {
        let b = &mut self.buf;
        b.extend_from_slice(&5i16.to_be_bytes());
        b.extend_from_slice(&4i32.to_be_bytes());
        b.extend_from_slice(&row.to_be_bytes());
        b.extend_from_slice(&4i32.to_be_bytes());
        b.extend_from_slice(&col.to_be_bytes());
        b.extend_from_slice(&8i32.to_be_bytes());
        b.extend_from_slice(&x.to_be_bytes());
        b.extend_from_slice(&8i32.to_be_bytes());
        b.extend_from_slice(&y.to_be_bytes());
        b.extend_from_slice(&(T::LEN as i32).to_be_bytes());
        v.put(b);
        self.rows += 1;
        self.value_sum += v.to_f64();
    }

    /// Appends the trailer.
    pub fn end(&mut self) {
        self.buf.extend_from_slice(TRAILER);
    }

    /// The encoded bytes not yet handed on.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Forgets the bytes handed on, keeping the allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Whether the buffer is full enough to hand on.
    pub fn full(&self) -> bool {
        self.buf.len() >= FLUSH_BYTES
    }
}

/// Why decoding a tile stopped.
#[derive(Debug)]
pub enum DecodeError {
    /// The tile's bytes are not what dataset.json describes (corrupt, truncated, foreign).
    Bad(String),
    /// Handing the bytes on failed (the connection).
    Sink(std::io::Error),
}

/// What a tile must contain: its window on the grid, and the dataset's type and nodata.
#[derive(Debug, Clone, Copy)]
pub struct TileShape<'a> {
    /// Target grid (for Zarr cell-centre coordinates).
    pub grid: &'a Grid,
    /// First row.
    pub row0: usize,
    /// First column.
    pub col0: usize,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Zarr chunk size (the dataset's window).
    pub window: usize,
    /// Value type.
    pub dtype: DataType,
    /// Nodata.
    pub nodata: Option<f64>,
}

/// Encodes every row of a Parquet tile into `enc` (after [`CopyEncoder::begin`]), handing the
/// buffer to `sink` whenever it is full; one record batch is in memory at a time.
///
/// # Errors
/// [`DecodeError::Bad`] for an unreadable tile or one whose schema or cells do not match;
/// [`DecodeError::Sink`] from `sink`.
pub fn parquet_rows(
    bytes: Bytes,
    shape: &TileShape<'_>,
    enc: &mut CopyEncoder,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), DecodeError> {
    crate::with_sample_type!(shape.dtype, T => parquet_typed::<T>(bytes, shape, enc, sink))
}

fn bad(e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Bad(e.to_string())
}

fn flush(enc: &mut CopyEncoder, sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>) -> Result<(), DecodeError> {
    sink(enc.bytes()).map_err(DecodeError::Sink)?;
    enc.clear();
    Ok(())
}

fn parquet_typed<T: PgValue>(
    bytes: Bytes,
    shape: &TileShape<'_>,
    enc: &mut CopyEncoder,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), DecodeError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(bad)?;
    let expected = crate::stage::parquet::tile_schema(T::Arrow::DATA_TYPE);
    let got = builder.schema();
    let names_types = |s: &arrow_schema::Schema| -> Vec<(String, arrow_schema::DataType)> {
        s.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect()
    };
    if names_types(got) != names_types(&expected) {
        return Err(DecodeError::Bad(format!(
            "columns {:?} do not match the tile schema {:?}",
            names_types(got),
            names_types(&expected)
        )));
    }
    let reader = builder.with_batch_size(BATCH_ROWS).build().map_err(bad)?;
    let (r0, r1) = (shape.row0 as i32, (shape.row0 + shape.rows) as i32);
    let (c0, c1) = (shape.col0 as i32, (shape.col0 + shape.cols) as i32);
    for batch in reader {
        let batch = batch.map_err(bad)?;
        if batch.columns().iter().any(|c| c.null_count() > 0) {
            return Err(DecodeError::Bad("null cells in a tile (only valid cells are staged)".into()));
        }
        let row = batch.column(0).as_primitive::<Int32Type>();
        let col = batch.column(1).as_primitive::<Int32Type>();
        let x = batch.column(2).as_primitive::<Float64Type>();
        let y = batch.column(3).as_primitive::<Float64Type>();
        let v = batch.column(4).as_primitive::<T::Arrow>();
        for i in 0..batch.num_rows() {
            let (r, c) = (row.value(i), col.value(i));
            // Rows outside the window would escape the range a reload deletes by.
            if r < r0 || r >= r1 || c < c0 || c >= c1 {
                return Err(DecodeError::Bad(format!("cell ({r}, {c}) lies outside the tile's window")));
            }
            enc.row::<T>(r, c, x.value(i), y.value(i), v.value(i));
        }
        if enc.full() {
            flush(enc, sink)?;
        }
    }
    enc.end();
    flush(enc, sink)
}

/// Encodes the valid cells of a zstd-compressed Zarr chunk (padded to `window` x `window`)
/// into `enc`, with cell-centre coordinates from [`Grid::centre_x`] / [`Grid::centre_y`], so
/// that a Zarr-staged dataset loads to the same rows as a Parquet-staged one.
///
/// # Errors
/// [`DecodeError::Bad`] when the chunk does not decompress to the chunk size;
/// [`DecodeError::Sink`] from `sink`.
pub fn zarr_rows(
    bytes: &[u8],
    shape: &TileShape<'_>,
    enc: &mut CopyEncoder,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), DecodeError> {
    crate::with_sample_type!(shape.dtype, T => zarr_typed::<T>(bytes, shape, enc, sink))
}

fn zarr_typed<T: PgValue>(
    bytes: &[u8],
    shape: &TileShape<'_>,
    enc: &mut CopyEncoder,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), DecodeError> {
    let size = std::mem::size_of::<T>();
    let win = shape.window;
    let expected = win * win * size;
    let raw = zstd::bulk::decompress(bytes, expected).map_err(|e| bad(format!("zstd: {e}")))?;
    if raw.len() != expected {
        return Err(DecodeError::Bad(format!("chunk holds {} bytes, expected {expected}", raw.len())));
    }
    let nodata: Option<T> = nodata_as(shape.nodata);
    let g = shape.grid;
    let xs: Vec<f64> = (shape.col0..shape.col0 + shape.cols).map(|c| g.centre_x(c)).collect();
    for r in 0..shape.rows {
        let row = shape.row0 + r;
        let y = g.centre_y(row);
        let line = &raw[r * win * size..(r * win + shape.cols) * size];
        for (c, cell) in line.chunks_exact(size).enumerate() {
            let v = T::from_le(cell);
            if v.is_valid(nodata) {
                enc.row::<T>(row as i32, (shape.col0 + c) as i32, xs[c], y, v);
            }
        }
        if enc.full() {
            flush(enc, sink)?;
        }
    }
    enc.end();
    flush(enc, sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_layout() {
        let mut e = CopyEncoder::new();
        e.begin();
        e.row::<u8>(1, 2, 0.5, -0.5, 7);
        e.end();
        let b = e.bytes();
        assert_eq!(&b[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(b.len(), 19 + 2 + (4 + 4) * 2 + (4 + 8) * 2 + 4 + 2 + 2);
        let row = &b[19..];
        assert_eq!(&row[..2], &5i16.to_be_bytes());
        assert_eq!(&row[2..6], &4i32.to_be_bytes());
        assert_eq!(&row[6..10], &1i32.to_be_bytes());
        // Byte is stored as int2.
        assert_eq!(&row[38..42], &2i32.to_be_bytes());
        assert_eq!(&row[42..44], &7i16.to_be_bytes());
        assert_eq!(&b[b.len() - 2..], &(-1i16).to_be_bytes());
        assert_eq!((e.rows, e.value_sum), (1, 7.0));
    }

    #[test]
    fn unsigned_widen() {
        let mut v = Vec::new();
        u32::MAX.put(&mut v);
        assert_eq!(v, (u32::MAX as i64).to_be_bytes());
        v.clear();
        u16::MAX.put(&mut v);
        assert_eq!(v, 65535i32.to_be_bytes());
    }
}
