//! Binary COPY: rows encoded straight into one reusable buffer, fed by the stage's rows of a
//! tile ([`crate::stage::rows`]: a converted raster's cells, or a merged tile's rows): load
//! never parses or picks a format itself.
//!
//! `BinaryCopyInWriter::write` boxes every value and goes through `ToSql` per field, which is
//! minutes for a few million rows; writing the format by hand is a few memcpys per row.
//! Format: header `PGCOPY\n\xff\r\n\0`, flags i32 0, extension length i32 0; per row a field
//! count i16 then each field as i32 length + big-endian bytes; trailer i16 -1.

use super::geometry;
use crate::dtype::Sample;
pub(crate) use crate::stage::read::{CellValue, DecodeError};
use crate::stage::rows::{Cells, MergedRows, TileRows};

/// The binary COPY signature, flags and header-extension length.
pub(crate) const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// End of data.
pub(crate) const TRAILER: &[u8] = &(-1i16).to_be_bytes();
/// The buffer is handed to the connection once it holds this much.
pub(crate) const FLUSH_BYTES: usize = 1 << 20;
/// Bytes of a row's field count and key fields `(row_idx, col_idx, x, y)`.
const KEY_LEN: usize = 2 + (4 + 4) * 2 + (4 + 8) * 2;
/// Bytes of a narrow row's field count and `(row_idx, col_idx)` (`load --coords view`).
const NARROW_KEY_LEN: usize = 2 + (4 + 4) * 2;
/// Bytes of the longest single-value row (an 8-byte value, then `geom`).
const ROW_MAX: usize = KEY_LEN + 4 + 8 + geometry::FIELD_LEN;

/// A row's field count and its key fields, as binary COPY bytes.
#[inline]
fn key_bytes(row: i32, col: i32, x: f64, y: f64, fields: i16) -> [u8; KEY_LEN] {
    let mut b = [0u8; KEY_LEN];
    b[0..2].copy_from_slice(&fields.to_be_bytes());
    b[2..6].copy_from_slice(&4i32.to_be_bytes());
    b[6..10].copy_from_slice(&row.to_be_bytes());
    b[10..14].copy_from_slice(&4i32.to_be_bytes());
    b[14..18].copy_from_slice(&col.to_be_bytes());
    b[18..22].copy_from_slice(&8i32.to_be_bytes());
    b[22..30].copy_from_slice(&x.to_be_bytes());
    b[30..34].copy_from_slice(&8i32.to_be_bytes());
    b[34..42].copy_from_slice(&y.to_be_bytes());
    b
}

/// The field count of a row with `values` value columns (binary COPY's is an int16), not
/// counting `geom`, which [`CopyEncoder::key_fields`] adds (one field is kept free for it).
///
/// # Errors
/// [`DecodeError::Bad`] for more columns than a row can have.
pub(crate) fn row_fields(values: usize) -> Result<i16, DecodeError> {
    values
        .checked_add(5)
        .and_then(|n| i16::try_from(n).ok())
        .map(|n| n - 1)
        .ok_or_else(|| DecodeError::Bad(format!("{values} value columns are more than a COPY row holds")))
}

/// A cell type as the PostgreSQL column that holds it (see [`crate::dtype::DataType::postgres`]).
pub(crate) trait PgValue: CellValue {
    /// Byte length of the PostgreSQL value.
    const LEN: usize;
    /// Writes the big-endian PostgreSQL bytes into `out` (exactly [`PgValue::LEN`] bytes).
    fn put_into(self, out: &mut [u8]);
    /// Appends the big-endian PostgreSQL bytes.
    #[inline]
    fn put(self, out: &mut Vec<u8>) {
        let mut b = [0u8; 8];
        self.put_into(&mut b[..Self::LEN]);
        out.extend_from_slice(&b[..Self::LEN]);
    }
}

macro_rules! pg_value {
    ($($t:ty => $pg:ty);*) => {$(
        impl PgValue for $t {
            const LEN: usize = std::mem::size_of::<$pg>();
            #[inline]
            fn put_into(self, out: &mut [u8]) {
                // Widening to the column type is lossless (u8 -> int2, u16 -> int4, u32 -> int8).
                out.copy_from_slice(&(self as $pg).to_be_bytes());
            }
        }
    )*};
}

pg_value!(u8 => i16; u16 => i32; i16 => i16; u32 => i64; i32 => i32; f32 => f32; f64 => f64);

/// A binary COPY stream under construction, with the row count and value sum of what it
/// holds (checked against dataset.json before the tile commits).
#[derive(Debug, Default)]
pub(crate) struct CopyEncoder {
    buf: Vec<u8>,
    /// Rows encoded since [`CopyEncoder::begin`].
    pub(crate) rows: u64,
    /// Sum of the values encoded, in encoding order.
    pub(crate) value_sum: f64,
    /// SRID of the `geom` point ending each row (`load --geometry`), if any.
    geom_srid: Option<u32>,
    /// `(x, y)` of the row started by [`CopyEncoder::key_fields`], for its `geom`.
    xy: (f64, f64),
    /// Rows are `(row_idx, col_idx, values)` without `x, y` (`load --coords view`).
    narrow: bool,
}

impl CopyEncoder {
    /// An empty encoder whose rows carry `x, y` (`xy`), or not (`load --coords view`): every row
    /// then has two fields fewer, whatever [`row_fields`] says.
    pub(crate) fn for_xy(xy: bool) -> CopyEncoder {
        CopyEncoder { buf: Vec::with_capacity(FLUSH_BYTES + 4096), narrow: !xy, ..CopyEncoder::default() }
    }

    /// Starts a new stream: clears the buffer and counters and writes the header. With
    /// `geom_srid`, every row ends with its `(x, y)` as a PostGIS point of that SRID
    /// ([`geometry::point_field`]), for a COPY whose column list ends with `geom`.
    pub(crate) fn begin(&mut self, geom_srid: Option<u32>) {
        self.geom_srid = geom_srid;
        self.buf.clear();
        self.rows = 0;
        self.value_sum = 0.0;
        self.buf.extend_from_slice(HEADER);
    }

    /// Appends one row `(row_idx, col_idx, x, y, value)`.
    ///
    /// The whole row is assembled in a stack array and appended with one copy: eleven
    /// `extend_from_slice` calls, each with its own capacity check, were a fifth of the
    /// loader's CPU.
    #[inline]
    pub(crate) fn row<T: PgValue>(&mut self, row: i32, col: i32, x: f64, y: f64, v: T) {
        let mut r = [0u8; ROW_MAX];
        // A narrow row is the wide row's count and key without `x, y` (and never has geom).
        let geom = self.geom_srid.filter(|_| !self.narrow);
        let (key, fields) = if self.narrow { (NARROW_KEY_LEN, 3) } else { (KEY_LEN, 5 + i16::from(geom.is_some())) };
        r[..key].copy_from_slice(&key_bytes(row, col, x, y, fields)[..key]);
        r[key..key + 4].copy_from_slice(&(T::LEN as i32).to_be_bytes());
        v.put_into(&mut r[key + 4..key + 4 + T::LEN]);
        let mut n = key + 4 + T::LEN;
        if let Some(srid) = geom {
            r[n..n + geometry::FIELD_LEN].copy_from_slice(&geometry::point_field(srid, x, y));
            n += geometry::FIELD_LEN;
        }
        self.buf.extend_from_slice(&r[..n]);
        self.value_sum += v.to_f64();
        self.rows += 1;
    }

    /// Starts a row of `fields` fields (4 + values, see [`row_fields`]) with `(row_idx,
    /// col_idx, x, y)`; the values follow by [`CopyEncoder::value`] or [`CopyEncoder::null`],
    /// then [`CopyEncoder::end_row`].
    #[inline]
    pub(crate) fn key_fields(&mut self, row: i32, col: i32, x: f64, y: f64, fields: i16) {
        if self.narrow {
            // row_fields counted x and y; a narrow row has neither.
            self.buf.extend_from_slice(&key_bytes(row, col, x, y, fields - 2)[..NARROW_KEY_LEN]);
            return;
        }
        // row_fields keeps a field free for geom.
        let fields = fields + i16::from(self.geom_srid.is_some());
        self.buf.extend_from_slice(&key_bytes(row, col, x, y, fields));
        self.xy = (x, y);
    }

    /// Appends one value field of the current row (added to the value sum).
    #[inline]
    pub(crate) fn value<T: PgValue>(&mut self, v: T) {
        self.buf.extend_from_slice(&(T::LEN as i32).to_be_bytes());
        v.put(&mut self.buf);
        self.value_sum += v.to_f64();
    }

    /// Appends a NULL field (length -1) to the current row.
    #[inline]
    pub(crate) fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    /// Ends a row started by [`CopyEncoder::key_fields`] (with its `geom`, if any).
    #[inline]
    pub(crate) fn end_row(&mut self) {
        if let Some(srid) = self.geom_srid {
            self.buf.extend_from_slice(&geometry::point_field(srid, self.xy.0, self.xy.1));
        }
        self.rows += 1;
    }

    /// Appends the trailer.
    pub(crate) fn end(&mut self) {
        self.buf.extend_from_slice(TRAILER);
    }

    /// The encoded bytes not yet handed on.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// Encodes every row of a committed tile (after [`CopyEncoder::begin`]) into `enc`, handing
/// the buffer to `sink` whenever it is full: a converted raster's valid cells in their type,
/// or a merged tile's rows with a NULL where a column has no value. Coordinates come from
/// [`crate::grid::Grid::centre_x`] / `centre_y` whatever the format, so a Zarr-staged
/// dataset loads to the same rows as a Parquet-staged one.
///
/// # Errors
/// [`DecodeError::Bad`] for a tile that is not what dataset.json describes (unreadable, other
/// columns, cells outside its window); [`DecodeError::Sink`] from `sink`.
pub(crate) fn encode_rows(
    rows: &TileRows<'_>,
    enc: &mut CopyEncoder,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), DecodeError> {
    match rows {
        TileRows::Cells(cells) => crate::with_sample_type!(cells.shape.dtype, T => cell_rows::<T>(cells, enc, sink))?,
        TileRows::Merged(merged) => merged_rows(merged, enc, sink)?,
    }
    enc.end();
    hand_on(enc, sink, true).map_err(DecodeError::Sink)
}

/// Hands the buffer to `sink`: what it holds when `all`, else only once it is full.
fn hand_on(
    enc: &mut CopyEncoder,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    all: bool,
) -> std::io::Result<()> {
    if all || enc.buf.len() >= FLUSH_BYTES {
        sink(enc.bytes())?;
        enc.buf.clear();
    }
    Ok(())
}

fn cell_rows<T: PgValue>(
    cells: &Cells<'_>,
    enc: &mut CopyEncoder,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), DecodeError> {
    let g = cells.shape.grid;
    let (gx, gy) = (g.x_axis(), g.y_axis());
    let (mut last_row, mut y) = (-1i32, 0.0);
    cells.visit::<T, _>(|r, c, v| {
        if r != last_row {
            last_row = r;
            y = gy.centre(r as usize);
        }
        enc.row::<T>(r, c, gx.centre(c as usize), y, v);
        hand_on(enc, sink, false)
    })
}

fn merged_rows(
    rows: &MergedRows<'_>,
    enc: &mut CopyEncoder,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), DecodeError> {
    let columns = rows.columns;
    let fields = row_fields(columns.len())?;
    rows.visit(|r, c, x, y, values| {
        enc.key_fields(r, c, x, y, fields);
        for (col, v) in columns.iter().zip(values) {
            match v {
                None => enc.null(),
                // Exact: the value was decoded from this column's type.
                Some(v) => crate::with_sample_type!(col.dtype, T => enc.value::<T>(T::from_f64(*v))),
            }
        }
        enc.end_row();
        hand_on(enc, sink, false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_layout() {
        let mut e = CopyEncoder::for_xy(true);
        e.begin(None);
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
        // Field count, row and col (4 + 4 bytes each), x and y (4 + 8 bytes each), then value.
        assert_eq!(&row[42..46], &2i32.to_be_bytes());
        assert_eq!(&row[46..48], &7i16.to_be_bytes());
        assert_eq!(&b[b.len() - 2..], &(-1i16).to_be_bytes());
        assert_eq!((e.rows, e.value_sum), (1, 7.0));
    }

    /// `row` (one copy per row) writes exactly what the field-by-field path writes, with and
    /// without `geom`.
    #[test]
    fn row_equals_fields() {
        fn both<T: PgValue + Copy>(v: T) {
            for srid in [None, Some(4326)] {
                let (mut a, mut b) = (CopyEncoder::for_xy(true), CopyEncoder::for_xy(true));
                a.begin(srid);
                b.begin(srid);
                a.row::<T>(-3, 70_000, -179.5, 89.25, v);
                b.key_fields(-3, 70_000, -179.5, 89.25, row_fields(1).unwrap());
                b.value::<T>(v);
                b.end_row();
                assert_eq!(a.bytes(), b.bytes());
                assert_eq!((a.rows, a.value_sum), (b.rows, b.value_sum));
                let row = &a.bytes()[HEADER.len()..];
                assert_eq!(row[..2], (5 + i16::from(srid.is_some())).to_be_bytes());
                if let Some(srid) = srid {
                    assert!(row.ends_with(&geometry::point_field(srid, -179.5, 89.25)));
                }
            }
        }
        both(u8::MAX);
        both(i16::MIN);
        both(u16::MAX);
        both(i32::MIN);
        both(u32::MAX);
        both(-1.5f32);
        both(f64::MAX);
    }

    /// A narrow row is the wide row without its `x` and `y` fields.
    #[test]
    fn narrow_row_drops_xy() {
        let (mut wide, mut narrow, mut fields) =
            (CopyEncoder::for_xy(true), CopyEncoder::for_xy(false), CopyEncoder::for_xy(false));
        for e in [&mut wide, &mut narrow, &mut fields] {
            e.begin(None);
        }
        wide.row::<f32>(7, -2, 1.5, 2.5, 0.25);
        narrow.row::<f32>(7, -2, 1.5, 2.5, 0.25);
        fields.key_fields(7, -2, 1.5, 2.5, row_fields(1).unwrap());
        fields.value::<f32>(0.25);
        fields.end_row();
        let (w, n) = (&wide.bytes()[HEADER.len()..], &narrow.bytes()[HEADER.len()..]);
        let mut want = 3i16.to_be_bytes().to_vec();
        want.extend_from_slice(&w[2..18]);
        want.extend_from_slice(&w[42..]);
        assert_eq!(n, &want[..]);
        assert_eq!(fields.bytes(), narrow.bytes());
        assert_eq!((narrow.rows, narrow.value_sum), (1, 0.25));
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
