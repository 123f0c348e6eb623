//! One output window: read the source cells it needs, run the kernel, return a [`Tile`].
//!
//! This is the edge where GDAL reads meet the pure kernels. Source reads are cut into strips
//! of output rows so that a window never needs more than [`SOURCE_BUDGET`] source cells in
//! memory, whatever the downsampling factor.

use crate::dtype::{nodata_as, DataType, Sample};
use crate::grid::Window;
use crate::limits::MAX_WINDOW_CELLS;
use crate::resample::mode::{self, Extreme};
use crate::resample::{area, point, Method, SourceBlock};
use crate::source::{Source, SourceError};
use crate::target_grid::{Kind, Plan};
use crate::tile::{IntoTileValues, Tile, TileValues};
use gdal::raster::GdalType;
use std::ops::Range;

/// Most bytes of source cells a worker reads at once: a 6x downsampling of 1024-cell
/// windows of Float64 would otherwise need 300 MB for one block. Smaller strips cost
/// nothing measurable (the block cache holds the block row that two strips share).
pub(crate) const SOURCE_BUDGET: usize = 16 << 20;

/// Computes the output window `w` of `plan` from `src`.
///
/// # Errors
/// [`SourceError`] when a read (or the warper) fails.
pub(crate) fn compute_tile(src: &Source, plan: &Plan, w: Window) -> Result<Tile, SourceError> {
    let values = crate::with_sample_type!(src.info.dtype, T => compute_typed::<T>(src, plan, w)?);
    Ok(Tile { window: w, values, nodata: plan.nodata })
}

/// The plan's output nodata as a value of the output type.
fn out_nodata<O: Sample>(plan: &Plan) -> O {
    plan.nodata.map_or(O::default(), O::from_f64)
}

fn compute_typed<T: Sample + GdalType + IntoTileValues>(
    src: &Source,
    plan: &Plan,
    w: Window,
) -> Result<TileValues, SourceError> {
    let nd: Option<T> = nodata_as(src.info.nodata);
    // `strips` of kernel `$k` over the axis maps `$rows` and `$cols`, into outputs of `$O`:
    // `$k(block, nodata, (rows map, rows), (columns map, columns), $arg.., output, its nodata)`.
    macro_rules! run {
        ($need:ident, $rows:ident, $cols:ident, $O:ty, $k:path $(, $arg:expr)*) => {
            strips(src, w, &$need, |b: &SourceBlock<T>, r, c, o: &mut [$O]| {
                $k(b, nd, ($rows, r), ($cols, c), $($arg,)* o, out_nodata(plan))
            })
        };
    }
    match &plan.kind {
        Kind::Passthrough { dr, dc } => {
            let mut out = vec![out_nodata::<T>(plan); w.cells()];
            passthrough(src, *dr, *dc, w, &mut out)?;
            Ok(T::wrap(out))
        }
        Kind::Areal { rows, cols } => {
            let need = |r: Range<usize>, c: Range<usize>| (rows.source_range(r), cols.source_range(c));
            let which = if plan.method == Method::Min { Extreme::Min } else { Extreme::Max };
            // Sum's output nodata is NaN (see target_grid::output_nodata).
            match (plan.method, plan.dtype) {
                (Method::Sum, _) => run!(need, rows, cols, f64, area::sum),
                (Method::Average, DataType::Float64) => run!(need, rows, cols, f64, area::average),
                (Method::Average, _) => run!(need, rows, cols, f32, area::average),
                (Method::Mode, _) => run!(need, rows, cols, T, mode::mode),
                _ => run!(need, rows, cols, T, mode::extreme, which),
            }
        }
        Kind::Point { rows, cols } => {
            let bil = plan.method == Method::Bilinear;
            let need = |r: Range<usize>, c: Range<usize>| (rows.source_range(r, bil), cols.source_range(c, bil));
            match (bil, plan.dtype) {
                (false, _) => run!(need, rows, cols, T, point::nearest),
                (true, DataType::Float64) => run!(need, rows, cols, f64, point::bilinear),
                (true, _) => run!(need, rows, cols, f32, point::bilinear),
            }
        }
        Kind::Warp if plan.method == Method::Sum => {
            Ok(f64::wrap(crate::warp::sum_window::<T>(src, &plan.target, w, SOURCE_BUDGET)?))
        }
        Kind::Warp => {
            crate::with_sample_type!(plan.dtype, O => Ok(O::wrap(crate::warp::warp_window::<O>(src, &plan.target, plan.method, plan.nodata, plan.warp_scale, w)?)))
        }
    }
}

/// Copies source cells into a window of the same lattice, offset by whole cells.
fn passthrough<T: Sample + GdalType>(
    src: &Source,
    dr: i64,
    dc: i64,
    w: Window,
    out: &mut [T],
) -> Result<(), SourceError> {
    let g = &src.info.grid;
    let clip = |a: i64, n: usize, len: usize| -> Range<usize> {
        let lo = a.clamp(0, n as i64) as usize;
        let hi = (a + len as i64).clamp(0, n as i64) as usize;
        lo..hi.max(lo)
    };
    let sr = clip(w.row0 as i64 + dr, g.height, w.rows);
    let sc = clip(w.col0 as i64 + dc, g.width, w.cols);
    if sr.is_empty() || sc.is_empty() {
        return Ok(());
    }
    if sr.len() == w.rows && sc.len() == w.cols {
        return src.read_into(sr, sc, out);
    }
    let mut buf = Vec::new();
    src.read(sr.clone(), sc.clone(), &mut buf)?;
    let orow = (sr.start as i64 - dr) as usize - w.row0;
    let ocol = (sc.start as i64 - dc) as usize - w.col0;
    for (k, line) in buf.chunks_exact(sc.len()).enumerate() {
        let o = (orow + k) * w.cols + ocol;
        out[o..o + sc.len()].copy_from_slice(line);
    }
    Ok(())
}

/// Runs `kernel` over strips of output rows of `w`, reading for each strip exactly the source
/// block `need` says it needs, at most about [`SOURCE_BUDGET`] bytes at a time, and returns the
/// window's values. `need` and `kernel` take the output rows and columns of a piece.
fn strips<T, O, N, K>(src: &Source, w: Window, need: &N, mut kernel: K) -> Result<TileValues, SourceError>
where
    T: Sample + GdalType,
    O: IntoTileValues,
    N: Fn(Range<usize>, Range<usize>) -> (Range<usize>, Range<usize>),
    K: FnMut(&SourceBlock<T>, Range<usize>, Range<usize>, &mut [O]),
{
    let mut out = vec![O::default(); w.cells()];
    let all_cols = w.col0..w.col0 + w.cols;
    let cell_bytes = std::mem::size_of::<T>();
    let mut piece: Vec<O> = Vec::new();
    with_scratch(|buf: &mut Vec<T>| {
        // Reads source block (sr, sc) and runs the kernel on it for output rows and columns.
        let mut run = |sr: Range<usize>, sc: Range<usize>, rows: Range<usize>, cols: Range<usize>, o: &mut [O]| {
            src.read(sr.clone(), sc.clone(), buf)?;
            kernel(&SourceBlock { data: buf, row0: sr.start, col0: sc.start, cols: sc.len() }, rows, cols, o);
            Ok::<(), SourceError>(())
        };
        let strip_need = |rows| need(rows, all_cols.clone());
        halving(w.row0..w.row0 + w.rows, cell_bytes, strip_need, |rows, sr, sc, fits| {
            let o = &mut out[(rows.start - w.row0) * w.cols..(rows.end - w.row0) * w.cols];
            if fits {
                return run(sr, sc, rows, all_cols.clone(), o);
            }
            // One output row whose source block alone exceeds the budget (a large downsampling
            // factor), in pieces of columns halved until each block fits. Each output cell
            // still gets every source cell it needs, so the values are the same.
            let r = rows.start;
            let piece_need = |cols| need(r..r + 1, cols);
            halving(all_cols.clone(), cell_bytes, piece_need, |cols, sr, sc, _| {
                check_cells(src, &sr, &sc)?;
                piece.clear();
                piece.resize(cols.len(), O::default());
                run(sr, sc, r..r + 1, cols.clone(), &mut piece)?;
                o[cols.start - w.col0..cols.end - w.col0].copy_from_slice(&piece);
                Ok(())
            })
        })
    })?;
    Ok(O::wrap(out))
}

/// plan() refuses a target cell of more source cells than [`MAX_WINDOW_CELLS`]; a check
/// here too, so that no arithmetic slip can turn into an unbounded read of block (sr, sc).
fn check_cells(src: &Source, sr: &Range<usize>, sc: &Range<usize>) -> Result<(), SourceError> {
    let cells = sr.len() as u64 * sc.len() as u64;
    if cells <= MAX_WINDOW_CELLS {
        return Ok(());
    }
    let reason = format!(
        "one target cell needs {cells} source cells, more than the limit of {MAX_WINDOW_CELLS}: choose a finer --resolution"
    );
    Err(SourceError::read(&src.info.path, sr.clone(), sc.clone(), reason))
}

/// Walks `range` in pieces whose source block (`need`: rows, columns) of `cell_bytes` cells
/// fits [`SOURCE_BUDGET`]: the first as long as the range, each halved until it fits or is
/// one long, each next no longer than the last. `each(piece, block rows, block columns,
/// fits)` in order; a piece of one that does not fit is the caller's to handle.
fn halving<E>(
    range: Range<usize>,
    cell_bytes: usize,
    need: impl Fn(Range<usize>) -> (Range<usize>, Range<usize>),
    mut each: impl FnMut(Range<usize>, Range<usize>, Range<usize>, bool) -> Result<(), E>,
) -> Result<(), E> {
    let (mut at, mut n) = (range.start, range.len());
    while at < range.end {
        n = n.min(range.end - at);
        let (sr, sc) = need(at..at + n);
        let fits = sr.len() as u128 * sc.len() as u128 * cell_bytes as u128 <= SOURCE_BUDGET as u128;
        if !fits && n > 1 {
            n = (n / 2).max(1);
            continue;
        }
        each(at..at + n, sr, sc, fits)?;
        at += n;
    }
    Ok(())
}

/// Runs `f` with this thread's source buffer of `T`s, kept from tile to tile: a fresh one per
/// tile was allocated and zeroed again each time (up to [`SOURCE_BUDGET`] bytes, so what a
/// worker keeps stays bounded).
fn with_scratch<T: 'static, R>(f: impl FnOnce(&mut Vec<T>) -> R) -> R {
    use std::any::Any;
    use std::cell::RefCell;
    thread_local! {
        static SCRATCH: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
    }
    let taken = SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let i = s.iter().position(|b| b.is::<Vec<T>>())?;
        s.swap_remove(i).downcast::<Vec<T>>().ok()
    });
    let mut buf = taken.map_or_else(Vec::new, |b| *b);
    let r = f(&mut buf);
    SCRATCH.with(|s| s.borrow_mut().push(Box::new(buf)));
    r
}
