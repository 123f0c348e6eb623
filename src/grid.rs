//! The raster grid: CRS, north-up transform and shape; windows, `-tap` alignment and
//! cell-centre coordinates.
//!
//! Every coordinate rasterstage writes comes from [`Grid::centre_x`] / [`Grid::centre_y`]:
//! one formula, in one place, always the cell centre (the original pipeline mixed corners and
//! centres, and joins on coordinates failed).

use crate::centres::{multiple, Axis};
use crate::limits::{MAX_GRID_CELLS, MAX_GRID_SIDE, MAX_TILES};
use serde::{Deserialize, Serialize};

/// How close (in cells) a value must be to a whole number to count as one. Floating-point
/// resolutions such as 0.016666666666667 never divide coordinates exactly; without this snap
/// an aligned raster would grow a sliver column on each side.
pub(crate) const SNAP_CELLS: f64 = 1e-6;

/// Errors about grid geometry.
#[derive(Debug, thiserror::Error)]
pub enum GridError {
    /// The geotransform has rotation/shear terms.
    #[error("{0}: rotated or sheared geotransform (terms {1}, {2}) is not supported; warp it north-up first, e.g. `gdalwarp in.tif out.tif`")]
    Rotated(String, f64, f64),
    /// The pixel size is zero or not north-up.
    #[error("{0}: pixel size ({1}, {2}) is not north-up (need dx > 0 and dy < 0)")]
    NotNorthUp(String, f64, f64),
    /// A resolution that cannot define a grid.
    #[error("resolution ({0}, {1}) must be positive on both axes")]
    BadResolution(f64, f64),
    /// Target bounds that enclose nothing (or are not finite: a reprojected extent can be).
    #[error("target bounds ({0}, {1}, {2}, {3}) are empty or not finite: need finite minx < maxx and miny < maxy (pass --bounds MINX MINY MAXX MAXY in the target CRS)")]
    EmptyBounds(f64, f64, f64, f64),
    /// A grid larger than [`MAX_GRID_SIDE`] cells a side or [`MAX_GRID_CELLS`] cells.
    #[error("the target grid would be {} x {} cells, more than the limit of {MAX_GRID_SIDE} cells a side and {MAX_GRID_CELLS} cells in all: choose a coarser --resolution (resampling.target_resolution) or smaller --bounds (resampling.target_bounds)", count_text(*.width), count_text(*.height))]
    TooLarge {
        /// Columns (a float: it may not fit any integer).
        width: f64,
        /// Rows.
        height: f64,
    },
    /// More windows than [`MAX_TILES`].
    #[error("the target grid of {width} x {height} cells in windows of {window} cells makes {tiles} tiles, more than the limit of {MAX_TILES}: choose a larger --window (resampling.window_size) or a coarser --resolution")]
    TooManyTiles {
        /// Columns.
        width: usize,
        /// Rows.
        height: usize,
        /// Window size.
        window: usize,
        /// Windows it makes.
        tiles: u64,
    },
}

/// A cell count computed as a float, for messages: whole below 1e15, else in scientific
/// notation (a 1e300-cell side would otherwise print 301 digits).
pub(crate) fn count_text(v: f64) -> String {
    if v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3e}")
    }
}

/// Checks a grid size given as floats (before any cast: a computed size may be NaN, infinite
/// or beyond every integer type) against [`MAX_GRID_SIDE`] and [`MAX_GRID_CELLS`], and returns
/// it as integers.
///
/// # Errors
/// [`GridError::TooLarge`].
pub(crate) fn checked_size(width: f64, height: f64) -> Result<(usize, usize), GridError> {
    let side = MAX_GRID_SIDE as f64;
    // `!(a <= b)` and not `a > b`, so that NaN is refused too.
    if !(width >= 0.0 && height >= 0.0 && width <= side && height <= side)
        || (width as u64) * (height as u64) > MAX_GRID_CELLS
    {
        return Err(GridError::TooLarge { width, height });
    }
    Ok((width as usize, height as usize))
}

/// A north-up grid of `width` x `height` cells. `(x0, y0)` is the outer top-left corner; `dy` is negative.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// CRS as WKT (empty when the source has none).
    pub(crate) crs_wkt: String,
    /// EPSG code of the CRS, when GDAL can identify one.
    pub(crate) epsg: Option<u32>,
    /// Left edge of column 0.
    pub(crate) x0: f64,
    /// Top edge of row 0.
    pub(crate) y0: f64,
    /// Cell width (positive).
    pub(crate) dx: f64,
    /// Cell height (negative: north-up).
    pub(crate) dy: f64,
    pub(crate) width: usize,
    pub(crate) height: usize,
}

/// An axis-aligned extent `(minx, miny, maxx, maxy)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Bounds {
    /// West edge.
    pub(crate) minx: f64,
    /// South edge.
    pub(crate) miny: f64,
    /// East edge.
    pub(crate) maxx: f64,
    /// North edge.
    pub(crate) maxy: f64,
}

/// `(minx, miny, maxx, maxy)`, for messages.
impl std::fmt::Display for Bounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {}, {}, {})", self.minx, self.miny, self.maxx, self.maxy)
    }
}

/// A rectangle of cells on a grid: rows `row0..row0+rows`, columns `col0..col0+cols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Window {
    pub(crate) row0: usize,
    pub(crate) col0: usize,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
}

impl Window {
    /// Number of cells.
    pub(crate) fn cells(&self) -> usize {
        self.rows * self.cols
    }

    /// The tile id used in file names and ledgers: `r<row0>_c<col0>`.
    pub(crate) fn tile_id(&self) -> String {
        format!("r{}_c{}", self.row0, self.col0)
    }

    /// Part (`i`, `j`) of this window cut into `side` x `side` windows from its corner,
    /// clipped to it (an inner chunk of a shard); `None` beyond its edge.
    pub(crate) fn part(&self, side: usize, i: usize, j: usize) -> Option<Window> {
        let (dr, dc) = (i.checked_mul(side)?, j.checked_mul(side)?);
        (dr < self.rows && dc < self.cols).then(|| Window {
            row0: self.row0 + dr,
            col0: self.col0 + dc,
            rows: side.min(self.rows - dr),
            cols: side.min(self.cols - dc),
        })
    }

    /// Whether this window and `other` share a cell.
    pub(crate) fn overlaps(&self, other: &Window) -> bool {
        self.row0 < other.row0 + other.rows
            && other.row0 < self.row0 + self.rows
            && self.col0 < other.col0 + other.cols
            && other.col0 < self.col0 + self.cols
    }
}

/// Round `v` to the nearest integer when it is within [`SNAP_CELLS`] of it.
pub(crate) fn snap(v: f64) -> f64 {
    let r = v.round();
    if (v - r).abs() < SNAP_CELLS {
        r
    } else {
        v
    }
}

impl Grid {
    /// Builds a grid from a GDAL geotransform, refusing rotated or south-up ones.
    ///
    /// # Errors
    /// [`GridError::Rotated`] or [`GridError::NotNorthUp`], naming `what` (usually the file).
    pub(crate) fn from_geotransform(
        what: &str,
        gt: [f64; 6],
        width: usize,
        height: usize,
        crs_wkt: String,
        epsg: Option<u32>,
    ) -> Result<Grid, GridError> {
        if gt[2] != 0.0 || gt[4] != 0.0 {
            return Err(GridError::Rotated(what.to_string(), gt[2], gt[4]));
        }
        if gt[1].partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || gt[5] >= 0.0 {
            return Err(GridError::NotNorthUp(what.to_string(), gt[1], gt[5]));
        }
        Ok(Grid { crs_wkt, epsg, x0: gt[0], y0: gt[3], dx: gt[1], dy: gt[5], width, height })
    }

    /// The GDAL geotransform of this grid.
    pub(crate) fn geotransform(&self) -> [f64; 6] {
        [self.x0, self.dx, 0.0, self.y0, 0.0, self.dy]
    }

    /// The column centres ([`crate::centres`]): take the axis once and call [`Axis::centre`]
    /// per cell.
    pub(crate) fn x_axis(&self) -> Axis {
        Axis::new(self.x0, self.dx)
    }

    /// The row centres; see [`Grid::x_axis`].
    pub(crate) fn y_axis(&self) -> Axis {
        Axis::new(self.y0, self.dy)
    }

    /// Outer bounds of the grid.
    pub(crate) fn bounds(&self) -> Bounds {
        Bounds {
            minx: self.x0,
            maxx: self.x0 + self.width as f64 * self.dx,
            maxy: self.y0,
            miny: self.y0 + self.height as f64 * self.dy,
        }
    }

    /// Number of cells (saturating: a grid read from a file may claim any size).
    pub(crate) fn cells(&self) -> u64 {
        (self.width as u64).saturating_mul(self.height as u64)
    }

    /// Number of windows of `size` cells (at least 1, as in [`Grid::windows`]) covering the grid.
    pub(crate) fn window_count(&self, size: usize) -> u64 {
        let size = size.max(1) as u64;
        (self.width as u64).div_ceil(size).saturating_mul((self.height as u64).div_ceil(size))
    }

    /// Checks that [`Grid::windows`] of `size` makes at most [`MAX_TILES`] windows, before
    /// they are listed.
    ///
    /// # Errors
    /// [`GridError::TooManyTiles`], suggesting a larger window.
    pub(crate) fn check_windows(&self, size: usize) -> Result<(), GridError> {
        let tiles = self.window_count(size);
        if tiles > MAX_TILES {
            return Err(GridError::TooManyTiles { width: self.width, height: self.height, window: size, tiles });
        }
        Ok(())
    }

    /// Index of this grid's cell (0, 0) on the lattice of multiples of the resolution from
    /// the CRS origin, when the grid is on that lattice. Two grids with the same CRS and
    /// resolution whose offsets exist differ by whole cells: `merge` joins them by subtracting
    /// offsets, never by comparing rounded coordinates.
    pub(crate) fn lattice_offset(&self) -> Option<(i64, i64)> {
        let c = snap(self.x0 / self.dx);
        let r = snap(self.y0 / self.dy);
        // Beyond 2^53 cells from the origin, indices are no longer exact in f64 (and `as i64`
        // would saturate): such a grid has no usable offset.
        let exact = |v: f64| v.fract() == 0.0 && v.abs() <= (1u64 << 53) as f64;
        (exact(c) && exact(r)).then_some((r as i64, c as i64))
    }

    /// A grid with resolution `(rx, ry)` aligned to multiples of the resolution (gdalwarp
    /// `-tap`) that covers `bounds` (default: this grid's bounds) in this grid's CRS.
    ///
    /// # Errors
    /// [`GridError::BadResolution`] or [`GridError::EmptyBounds`].
    #[cfg(test)]
    pub(crate) fn aligned(&self, rx: f64, ry: f64, bounds: Option<Bounds>) -> Result<Grid, GridError> {
        let b = bounds.unwrap_or_else(|| self.bounds());
        aligned_grid(&self.crs_wkt, self.epsg, rx, ry, b)
    }

    /// Whether `other` has the same CRS and cell size (within `tolerance`, relative) and its
    /// cell edges coincide with this grid's.
    pub(crate) fn same_lattice(&self, other: &Grid, tolerance: f64) -> bool {
        let close = |a: f64, b: f64| (a - b).abs() <= tolerance * a.abs().max(b.abs());
        if self.crs_wkt != other.crs_wkt || !close(self.dx, other.dx) || !close(self.dy, other.dy) {
            return false;
        }
        let cx = (other.x0 - self.x0) / self.dx;
        let cy = (other.y0 - self.y0) / self.dy;
        snap(cx).fract() == 0.0 && snap(cy).fract() == 0.0
    }

    /// The output windows of `size` x `size` cells covering the grid, row-major. Callers
    /// with a grid or window from input check [`Grid::check_windows`] first.
    pub(crate) fn windows(&self, size: usize) -> Vec<Window> {
        let size = size.max(1);
        let mut out = Vec::new();
        for row0 in (0..self.height).step_by(size) {
            for col0 in (0..self.width).step_by(size) {
                out.push(Window { row0, col0, rows: size.min(self.height - row0), cols: size.min(self.width - col0) });
            }
        }
        out
    }
}

/// A `-tap` aligned grid of resolution `(rx, ry)` covering `b`.
///
/// # Errors
/// [`GridError::BadResolution`], [`GridError::EmptyBounds`] (also for bounds that are not
/// finite), or [`GridError::TooLarge`] before anything of that size exists.
pub(crate) fn aligned_grid(crs_wkt: &str, epsg: Option<u32>, rx: f64, ry: f64, b: Bounds) -> Result<Grid, GridError> {
    if !(rx > 0.0 && ry > 0.0 && rx.is_finite() && ry.is_finite()) {
        return Err(GridError::BadResolution(rx, ry));
    }
    let finite = b.minx.is_finite() && b.miny.is_finite() && b.maxx.is_finite() && b.maxy.is_finite();
    if !(finite && b.minx < b.maxx && b.miny < b.maxy) {
        return Err(GridError::EmptyBounds(b.minx, b.miny, b.maxx, b.maxy));
    }
    let c0 = snap(b.minx / rx).floor();
    let c1 = snap(b.maxx / rx).ceil();
    let r0 = snap(b.miny / ry).floor();
    let r1 = snap(b.maxy / ry).ceil();
    // Checked as floats: `as usize` would saturate a 1e300-cell side into a plausible number.
    let (width, height) = checked_size((c1 - c0).max(1.0), (r1 - r0).max(1.0))?;
    Ok(Grid {
        crs_wkt: crs_wkt.to_string(),
        epsg,
        x0: multiple(c0, rx),
        y0: multiple(r1, ry),
        dx: rx,
        dy: -ry,
        width,
        height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(x0: f64, y0: f64, d: f64, w: usize, h: usize) -> Grid {
        Grid { crs_wkt: "EPSG:4326".into(), epsg: Some(4326), x0, y0, dx: d, dy: -d, width: w, height: h }
    }

    #[test]
    fn centres_are_cell_centres() {
        let grid = g(-180.0, 90.0, 0.5, 720, 360);
        assert_eq!(grid.x_axis().centre(0), -179.75);
        assert_eq!(grid.y_axis().centre(0), 89.75);
        assert_eq!(grid.y_axis().centre(359), -89.75);
    }

    #[test]
    fn tap_alignment_snaps_float_resolutions() {
        let res = 0.016666666666667;
        let src = g(-180.0, 83.667, 1.0 / 120.0, 43200, 10000);
        let t = src.aligned(res, res, None).unwrap();
        assert_eq!(t.width, 21600);
        assert!((t.x0 + 180.0).abs() < 1e-9);
        // 83.667 is not on the 1' lattice: the grid grows to the next multiple (5021').
        assert!((t.y0 - 5021.0 / 60.0).abs() < 1e-9, "{}", t.y0);
        assert_eq!(t.lattice_offset().unwrap().1, -10800);
    }

    #[test]
    fn windows_cover_exactly_once() {
        let grid = g(0.0, 0.0, 1.0, 1001, 257);
        let ws = grid.windows(256);
        assert_eq!(ws.len(), 4 * 2);
        let total: usize = ws.iter().map(|w| w.cells()).sum();
        assert_eq!(total, 1001 * 257);
        assert_eq!(ws.last().unwrap().tile_id(), "r256_c768");
    }

    #[test]
    fn absurd_grids_are_refused_before_allocation() {
        let b = |v: f64| Bounds { minx: -v, miny: -v, maxx: v, maxy: v };
        for (res, bounds) in [(1.0, b(1e300)), (1e-7, b(180.0)), (1e-300, b(1e300)), (f64::MIN_POSITIVE, b(1.0))] {
            let e = aligned_grid("", None, res, res, bounds).unwrap_err().to_string();
            assert!(e.contains("--resolution") && e.contains(&MAX_GRID_SIDE.to_string()), "{e}");
        }
        for bad in [f64::NAN, f64::INFINITY] {
            let e = aligned_grid("", None, 1.0, 1.0, b(bad)).unwrap_err();
            assert!(matches!(e, GridError::EmptyBounds(..)), "{e}");
        }
        // The largest side that fits, on one row.
        let g =
            aligned_grid("", None, 1.0, 1.0, Bounds { minx: 0.0, miny: 0.0, maxx: MAX_GRID_SIDE as f64, maxy: 1.0 });
        assert_eq!(g.unwrap().width as u64, MAX_GRID_SIDE);
        let e = checked_size(2.0f64.powi(21), 2.0f64.powi(21) + 1.0).unwrap_err().to_string();
        assert!(e.contains(&MAX_GRID_CELLS.to_string()), "{e}");
    }

    #[test]
    fn tile_count_is_checked_before_listing() {
        let grid = g(0.0, 0.0, 1.0, 1 << 20, 1 << 20);
        assert_eq!(grid.window_count(1024), 1 << 20);
        assert!(grid.check_windows(1024).is_ok());
        let e = grid.check_windows(16).unwrap_err().to_string();
        assert!(e.contains("--window") && e.contains(&MAX_TILES.to_string()), "{e}");
        assert_eq!(g(0.0, 0.0, 1.0, usize::MAX, usize::MAX).cells(), u64::MAX);
    }

    #[test]
    fn rotated_is_refused() {
        let e = Grid::from_geotransform("a.tif", [0.0, 1.0, 0.1, 0.0, 0.0, -1.0], 1, 1, "".into(), None).unwrap_err();
        assert!(e.to_string().contains("rotated"));
    }

    #[test]
    fn lattice() {
        let a = g(-180.0, 90.0, 0.25, 10, 10);
        let b = g(-179.5, 89.0, 0.25, 10, 10);
        let c = g(-179.625, 89.0, 0.25, 10, 10);
        assert!(a.same_lattice(&b, 1e-9));
        assert!(!a.same_lattice(&c, 1e-9));
    }
}
