//! Reading staged tiles back: a committed tile's objects (checked against its record), and
//! the valid cells `(row_idx, col_idx, value)` of one tile, from a Parquet tile or a Zarr chunk.
//!
//! One decoder serves `load` (which encodes the cells for COPY) and `merge` (which places
//! them on the merged grid), so both see exactly the same cells and both refuse a tile that
//! is not what dataset.json describes.

pub(crate) use super::CellValue;
use crate::dtype::{nodata_as, DataType, Sample};
use crate::grid::{Grid, Window};
use crate::stage::manifest::{checksum_parts, Manifest, TileRecord};
use crate::stage::Format;
use crate::store::{Store, StoreError};
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrowPrimitiveType};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

/// Rows per Parquet record batch read at a time (bounds what is decoded at once).
const BATCH_ROWS: usize = 64 * 1024;

/// The Arrow type of a staged column of `dtype`.
pub(crate) fn arrow_type(dtype: DataType) -> arrow_schema::DataType {
    crate::with_sample_type!(dtype, T => <<T as CellValue>::Arrow as ArrowPrimitiveType>::DATA_TYPE)
}

/// Why decoding a tile stopped.
#[derive(Debug)]
pub(crate) enum DecodeError {
    /// The tile's bytes are not what dataset.json describes (corrupt, truncated, foreign).
    Bad(String),
    /// The consumer of the cells failed (for `load`, the connection).
    Sink(std::io::Error),
}

/// What a tile must contain: its window on the grid, and the dataset's type and nodata.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TileShape<'a> {
    /// The dataset's grid (for cell-centre coordinates).
    pub(crate) grid: &'a Grid,
    /// The tile's cells on the grid.
    pub(crate) cells: Window,
    /// Zarr chunk size (the dataset's window).
    pub(crate) window: usize,
    /// Sharded Zarr: inner chunks per shard side; the tile is then one shard object.
    pub(crate) shard: Option<usize>,
    /// Value type.
    pub(crate) dtype: DataType,
    /// Nodata.
    pub(crate) nodata: Option<f64>,
    /// GeoParquet tiles: their geometry and bbox columns follow the cells' columns.
    pub(crate) geoparquet: Option<crate::stage::geoparquet::GeoEncoding>,
}

/// Why a committed tile's objects cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An object is missing, or the objects are not what the record's checksum says.
    #[error("{0}")]
    Bad(String),
}

/// Reads the objects of committed tile `t` of dataset `m` in folder `ds` (one, or one chunk
/// per column of a merged Zarr dataset) and checks them against the record's checksum;
/// `None` for a tile without valid cells (nothing is stored for it).
///
/// # Errors
/// [`FetchError::Bad`] naming the missing or changed object and the command that rewrites
/// it; [`FetchError::Store`].
pub(crate) fn fetch_tile(ds: &Store, m: &Manifest, t: &TileRecord) -> Result<Option<Vec<Bytes>>, FetchError> {
    let keys = m.tile_keys(t);
    if keys.is_empty() {
        return Ok(None);
    }
    // A plain rerun of a complete dataset does nothing, so only --overwrite rewrites the tile.
    let redo = format!("run {} again with --overwrite", m.redo());
    let missing = |key| FetchError::Bad(format!("{} is listed in dataset.json but missing; {redo}", ds.url_of(key)));
    let parts: Vec<Bytes> = keys.iter().map(|k| ds.get(k)?.ok_or_else(|| missing(k))).collect::<Result<_, _>>()?;
    let sum = checksum_parts(parts.iter().map(|b| b.as_ref()));
    if Some(&sum) != t.checksum.as_ref() {
        let what = match keys.len() {
            1 => ds.url_of(&keys[0]),
            n => format!("{} (with the same chunk of the other {} columns)", ds.url_of(&keys[0]), n - 1),
        };
        return Err(FetchError::Bad(format!(
            "{what} is corrupt or was rewritten: its checksum {sum} is not dataset.json's {}; {redo}",
            t.checksum.as_deref().unwrap_or("(none)")
        )));
    }
    Ok(Some(parts))
}

/// The window of a tile as one dense row-major buffer of its cells,
/// NaN where the tile has no valid cell.
///
/// # Errors
/// As [`visit_cells`].
pub(crate) fn dense_f64(format: Format, bytes: &Bytes, shape: &TileShape<'_>) -> Result<Vec<f64>, DecodeError> {
    let mut buf = vec![f64::NAN; shape.cells.cells()];
    visit_f64(format, bytes, shape, None, |r, c, v| {
        // visit_cells refuses cells outside the window, so the index is in range.
        buf[(r as usize - shape.cells.row0) * shape.cells.cols + (c as usize - shape.cells.col0)] = v;
        Ok(())
    })?;
    Ok(buf)
}

impl<'a> TileShape<'a> {
    /// What committed tile `t` of dataset `m` must contain (for a merged dataset, the type and
    /// nodata are the manifest's placeholders: each column has its own).
    pub(crate) fn of(m: &'a Manifest, t: &TileRecord) -> TileShape<'a> {
        let (dtype, nodata) = m.value_type();
        TileShape {
            grid: &m.grid,
            cells: t.window,
            window: m.window,
            shard: m.format.shard(),
            dtype,
            nodata,
            geoparquet: m.format.geoparquet(),
        }
    }
}

pub(crate) fn bad(e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Bad(e.to_string())
}

/// `v` as a PostgreSQL `int4` index (a validated manifest's windows always fit).
fn int4(v: usize) -> Result<i32, DecodeError> {
    i32::try_from(v).map_err(|_| DecodeError::Bad(format!("cell index {v} exceeds int4")))
}

/// Refuses cells that are not inside the window or not each once. Tiles are written
/// row-major, one row per cell (stage/parquet.rs, stage/merged.rs), so every cell must come
/// strictly after the one before: a single comparison finds a duplicate, with no bitmap.
#[derive(Debug)]
pub(crate) struct CellOrder {
    rows: std::ops::Range<i32>,
    cols: std::ops::Range<i32>,
    last: Option<(i32, i32)>,
}

impl CellOrder {
    /// The check for the window of `shape`.
    ///
    /// # Errors
    /// [`DecodeError::Bad`] when the window does not fit `int4` indices.
    pub(crate) fn new(shape: &TileShape<'_>) -> Result<CellOrder, DecodeError> {
        let end = |a: usize, n: usize| a.checked_add(n).ok_or_else(|| bad("window overflows"));
        Ok(CellOrder {
            rows: int4(shape.cells.row0)?..int4(end(shape.cells.row0, shape.cells.rows)?)?,
            cols: int4(shape.cells.col0)?..int4(end(shape.cells.col0, shape.cells.cols)?)?,
            last: None,
        })
    }

    /// Accepts cell `(r, c)` if it lies in the window and after the previous one.
    ///
    /// # Errors
    /// [`DecodeError::Bad`] naming the cell.
    #[inline]
    pub(crate) fn next(&mut self, r: i32, c: i32) -> Result<(), DecodeError> {
        // Cells outside the window would escape the range a reload deletes by, or land in
        // another window's place in a merge; a cell twice would load twice.
        if !self.rows.contains(&r) || !self.cols.contains(&c) {
            return Err(DecodeError::Bad(format!("cell ({r}, {c}) lies outside the tile's window")));
        }
        if let Some((lr, lc)) = self.last.filter(|&last| (r, c) <= last) {
            let what = if (r, c) == (lr, lc) { "appears twice" } else { "is out of row-major order" };
            return Err(bad(format!("cell ({r}, {c}) {what} (after cell ({lr}, {lc}))")));
        }
        self.last = Some((r, c));
        Ok(())
    }
}

/// Calls `f(row_idx, col_idx, value)` for every valid cell of a tile, row-major. Of a shard,
/// when only the cells inside `within` are needed, only the inner chunks that overlap it are
/// decoded (the cells of those chunks outside `within` are still visited).
///
/// # Errors
/// [`DecodeError::Bad`] for an unreadable tile, one whose columns do not match, or a cell
/// outside the tile's window; [`DecodeError::Sink`] when `f` fails.
pub(crate) fn visit_cells<T, F>(
    format: Format,
    bytes: &Bytes,
    shape: &TileShape<'_>,
    within: Option<Window>,
    f: F,
) -> Result<(), DecodeError>
where
    T: CellValue,
    F: FnMut(i32, i32, T) -> std::io::Result<()>,
{
    match format {
        Format::Parquet => {
            let expected = crate::stage::parquet::tile_schema_with(T::Arrow::DATA_TYPE, shape.geoparquet);
            parquet_column(bytes, shape, &expected, "tile schema", 4, false, f)
        }
        Format::Zarr => match shape.shard {
            Some(k) => shard_cells(bytes, shape, k, within, f),
            None => zarr_cells(bytes, shape, f),
        },
    }
}

/// [`visit_cells`] with values widened to f64 (exact for every staged type), whatever the
/// dataset's type.
///
/// # Errors
/// As [`visit_cells`].
pub(crate) fn visit_f64<F>(
    format: Format,
    bytes: &Bytes,
    shape: &TileShape<'_>,
    within: Option<Window>,
    mut f: F,
) -> Result<(), DecodeError>
where
    F: FnMut(i32, i32, f64) -> std::io::Result<()>,
{
    crate::with_sample_type!(shape.dtype, T => visit_cells::<T, _>(format, bytes, shape, within, |r, c, v| f(r, c, v.to_f64())))
}

/// Refuses a Parquet tile whose columns (names and types, in order) are not those of
/// `expected` (`what`: that schema, for the message).
///
/// # Errors
/// [`DecodeError::Bad`] listing both.
pub(crate) fn same_columns(
    got: &arrow_schema::Schema,
    expected: &arrow_schema::Schema,
    what: &str,
) -> Result<(), DecodeError> {
    let names_types = |s: &arrow_schema::Schema| -> Vec<(String, arrow_schema::DataType)> {
        s.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect()
    };
    if names_types(got) != names_types(expected) {
        return Err(bad(format!("columns {:?} do not match the {what} {:?}", names_types(got), names_types(expected))));
    }
    Ok(())
}

/// Calls `f(row_idx, col_idx, value)` for the cells of column `value` of a Parquet tile whose
/// columns must be those of `expected` (`what`: that schema, for the message), row-major and
/// inside the tile's window. A null value is skipped when `nullable` (a merged column: no
/// value there) and refused otherwise (a converted tile holds its valid cells only).
///
/// # Errors
/// As [`visit_cells`].
pub(crate) fn parquet_column<T, F>(
    bytes: &Bytes,
    shape: &TileShape<'_>,
    expected: &arrow_schema::Schema,
    what: &str,
    value: usize,
    nullable: bool,
    mut f: F,
) -> Result<(), DecodeError>
where
    T: CellValue,
    F: FnMut(i32, i32, T) -> std::io::Result<()>,
{
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).map_err(bad)?;
    same_columns(builder.schema(), expected, what)?;
    // x and y are the grid's cell centres by construction: readers compute them from the
    // grid's one formula instead of decoding two double columns per cell.
    let mask = ProjectionMask::roots(builder.parquet_schema(), [0, 1, value]);
    let reader = builder.with_projection(mask).with_batch_size(BATCH_ROWS).build().map_err(bad)?;
    let mut order = CellOrder::new(shape)?;
    for batch in reader {
        let batch = batch.map_err(bad)?;
        let (row, col, v) = (batch.column(0), batch.column(1), batch.column(2));
        if row.null_count() > 0 || col.null_count() > 0 || (!nullable && v.null_count() > 0) {
            return Err(bad(match nullable {
                true => "null row_idx or col_idx in a merged tile",
                false => "null cells in a tile (only valid cells are staged)",
            }));
        }
        let (row, col) = (row.as_primitive::<Int32Type>(), col.as_primitive::<Int32Type>());
        let v = v.as_primitive::<T::Arrow>();
        for i in 0..batch.num_rows() {
            let (r, c) = (row.value(i), col.value(i));
            order.next(r, c)?;
            if !(nullable && v.is_null(i)) {
                f(r, c, v.value(i)).map_err(DecodeError::Sink)?;
            }
        }
    }
    Ok(())
}

/// The cells of a shard object: each stored inner chunk (overlapping `within`, when given)
/// decoded as an unsharded chunk of its window, one at a time (the shard's compressed bytes
/// and one window are in memory).
fn shard_cells<T, F>(
    bytes: &[u8],
    shape: &TileShape<'_>,
    k: usize,
    within: Option<Window>,
    mut f: F,
) -> Result<(), DecodeError>
where
    T: CellValue,
    F: FnMut(i32, i32, T) -> std::io::Result<()>,
{
    let (win, Window { rows, cols, .. }) = (shape.window, shape.cells);
    if win.checked_mul(k).is_none_or(|side| rows > side || cols > side) {
        return Err(bad(format!("tile {rows}x{cols} exceeds the shard of {k}x{k} chunks of {win}")));
    }
    for (i, chunk) in crate::stage::zarr::shard_chunks(bytes, k).map_err(bad)? {
        let cells = shape
            .cells
            .part(win, i / k, i % k)
            .ok_or_else(|| bad(format!("the shard stores inner chunk {i}, which lies beyond the grid")))?;
        let inner = TileShape { cells, shard: None, ..*shape };
        if within.is_none_or(|w| cells.overlaps(&w)) {
            zarr_cells(chunk, &inner, &mut f)?;
        }
    }
    Ok(())
}

fn zarr_cells<T, F>(bytes: &[u8], shape: &TileShape<'_>, mut f: F) -> Result<(), DecodeError>
where
    T: CellValue,
    F: FnMut(i32, i32, T) -> std::io::Result<()>,
{
    let size = std::mem::size_of::<T>();
    let (win, Window { rows, cols, .. }) = (shape.window, shape.cells);
    let expected = win
        .checked_mul(win)
        .and_then(|n| n.checked_mul(size))
        .ok_or_else(|| bad(format!("chunk size {win} overflows")))?;
    if rows > win || cols > win {
        return Err(bad(format!("window {rows}x{cols} exceeds the chunk size {win}")));
    }
    // The frame header states the decoded size: a chunk that is not this window's size is
    // refused before its (window-sized) buffer is allocated.
    if let Ok(Some(n)) = zstd::zstd_safe::get_frame_content_size(bytes) {
        if n != expected as u64 {
            return Err(bad(format!("chunk holds {n} bytes, expected {expected}")));
        }
    }
    let raw = zstd::bulk::decompress(bytes, expected).map_err(|e| bad(format!("zstd: {e}")))?;
    if raw.len() != expected {
        return Err(bad(format!("chunk holds {} bytes, expected {expected}", raw.len())));
    }
    // Every cell of a dense chunk is inside the window and there once by construction; the
    // bounds only have to fit int4.
    let order = CellOrder::new(shape)?;
    let nodata: Option<T> = nodata_as(shape.nodata);
    for (r, row) in (0..rows).zip(order.rows.clone()) {
        let line = &raw[r * win * size..(r * win + cols) * size];
        for (cell, col) in line.chunks_exact(size).zip(order.cols.clone()) {
            let v = T::from_le(cell);
            if v.is_valid(nodata) {
                f(row, col, v).map_err(DecodeError::Sink)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tile_of_a_manifest_the_fuzzer_gets_accepted_has_a_cell_order() {
        for m in crate::stage::manifest::fuzz_tests::accepted_manifests() {
            for t in &m.tiles {
                CellOrder::new(&TileShape::of(&m, t)).expect("a checked window fits int4");
            }
        }
    }

    #[test]
    fn cells_must_be_inside_the_window_and_each_once_in_row_major_order() {
        let grid =
            Grid { crs_wkt: String::new(), epsg: None, x0: 0.0, y0: 0.0, dx: 1.0, dy: -1.0, width: 100, height: 100 };
        let shape = TileShape {
            grid: &grid,
            cells: Window { row0: 32, col0: 64, rows: 32, cols: 32 },
            window: 32,
            shard: None,
            dtype: DataType::Float32,
            nodata: None,
            geoparquet: None,
        };
        let run = |cells: &[(i32, i32)]| -> Result<(), String> {
            let mut o = CellOrder::new(&shape).map_err(|e| format!("{e:?}"))?;
            cells.iter().try_for_each(|&(r, c)| o.next(r, c)).map_err(|e| format!("{e:?}"))
        };
        run(&[(32, 64), (32, 95), (33, 64), (63, 95)]).unwrap();
        assert!(run(&[(32, 64), (32, 64)]).unwrap_err().contains("appears twice"));
        assert!(run(&[(33, 64), (32, 70)]).unwrap_err().contains("out of row-major order"));
        for outside in [(31, 64), (64, 64), (32, 63), (32, 96), (-1, 64)] {
            assert!(run(&[outside]).unwrap_err().contains("outside the tile's window"), "{outside:?}");
        }
        // A window whose end does not fit int4 is refused before any cell.
        let far = TileShape { cells: Window { row0: i32::MAX as usize, ..shape.cells }, ..shape };
        assert!(CellOrder::new(&far).is_err());
    }
}
