//! Whether staged datasets share one lattice, and the merged grid that covers them all.
//!
//! Datasets join by integer cell offsets derived from their grids, never by comparing
//! coordinates: the original pipeline joined on coordinates rounded to 6 decimals and put
//! datasets whose origins differed by a fraction of a cell side by side.

use crate::grid::{checked_size, count_text, snap, Grid};
use crate::limits::{MAX_GRID_CELLS, MAX_GRID_SIDE};

/// Relative tolerance for "same cell size".
pub(crate) const CELL_TOLERANCE: f64 = 1e-9;

/// Why two grids are not on one lattice, with what would fix it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LatticeError {
    /// Different CRS.
    #[error("{other} is in another CRS ({other_crs}) than {first} ({first_crs}): datasets merge only on one lattice; convert them with the same --target-crs, --resolution and --bounds (the same resampling.target_crs, target_resolution and target_bounds in the config)")]
    Crs {
        /// The reference dataset.
        first: String,
        /// Its CRS, short.
        first_crs: String,
        /// The dataset that differs.
        other: String,
        /// Its CRS, short.
        other_crs: String,
    },
    /// Different cell size.
    #[error("{other} has {other_dx} x {other_dy} cells, {first} has {first_dx} x {first_dy}: datasets merge only on one lattice; convert them with the same --resolution {first_dx} and --bounds (the same resampling.target_resolution and target_bounds in the config)")]
    Resolution {
        /// The reference dataset.
        first: String,
        /// Its cell width.
        first_dx: f64,
        /// Its cell height.
        first_dy: f64,
        /// The dataset that differs.
        other: String,
        /// Its cell width.
        other_dx: f64,
        /// Its cell height.
        other_dy: f64,
    },
    /// Origins not a whole number of cells apart.
    #[error("{other} is shifted by ({sx}, {sy}) cells from {first} (origins ({ox}, {oy}) and ({fx}, {fy})): datasets merge only on one lattice; convert them with the same --resolution {res} (aligned to multiples of it, the default) and the same --bounds MINX MINY MAXX MAXY (the same resampling.target_bounds in the config)")]
    Shifted {
        /// The reference dataset.
        first: String,
        /// The dataset that differs.
        other: String,
        /// Fraction of a cell along x.
        sx: f64,
        /// Fraction of a cell along y.
        sy: f64,
        /// Its origin x.
        ox: f64,
        /// Its origin y.
        oy: f64,
        /// The reference origin x.
        fx: f64,
        /// The reference origin y.
        fy: f64,
        /// The reference cell width.
        res: f64,
    },
    /// The union of the grids exceeds the grid limits.
    #[error("the merged grid of {first} and {other} would be {} x {} cells, more than the limit of {MAX_GRID_SIDE} cells a side and {MAX_GRID_CELLS} cells in all: merge datasets that lie closer together, or convert them with a coarser --resolution", count_text(*.width), count_text(*.height))]
    TooLarge {
        /// The reference dataset.
        first: String,
        /// The dataset that made the union too large.
        other: String,
        /// Columns of the union (a float: it may not fit any integer).
        width: f64,
        /// Rows of the union.
        height: f64,
    },
}

/// A short name of a CRS for messages: `EPSG:n`, else the WKT's first quoted name.
fn short_crs(g: &Grid) -> String {
    if let Some(e) = g.epsg {
        return format!("EPSG:{e}");
    }
    let w = &g.crs_wkt;
    match w.split('"').nth(1) {
        Some(n) => n.to_string(),
        None if w.is_empty() => "none".to_string(),
        None => w.chars().take(40).collect(),
    }
}

/// `v` rounded to 3 decimals, for messages.
fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Whether two CRS definitions are the same CRS (GDAL's comparison when the WKT differs).
fn same_crs(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (gdal::spatial_ref::SpatialRef::from_wkt(a), gdal::spatial_ref::SpatialRef::from_wkt(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// `[row, col]` offset of `other`'s cell (0, 0) from `first`'s on their common lattice.
///
/// # Errors
/// [`LatticeError`] showing the difference and the `convert` options that fix it.
pub(crate) fn offset(first: &str, a: &Grid, other: &str, b: &Grid) -> Result<[i64; 2], LatticeError> {
    if !same_crs(&a.crs_wkt, &b.crs_wkt) {
        return Err(LatticeError::Crs {
            first: first.into(),
            first_crs: short_crs(a),
            other: other.into(),
            other_crs: short_crs(b),
        });
    }
    let close = |x: f64, y: f64| (x - y).abs() <= CELL_TOLERANCE * x.abs().max(y.abs());
    if !close(a.dx, b.dx) || !close(a.dy, b.dy) {
        return Err(LatticeError::Resolution {
            first: first.into(),
            first_dx: a.dx,
            first_dy: -a.dy,
            other: other.into(),
            other_dx: b.dx,
            other_dy: -b.dy,
        });
    }
    let cx = snap((b.x0 - a.x0) / a.dx);
    let cy = snap((b.y0 - a.y0) / a.dy);
    // Grids further apart than a grid side cannot share a grid within the limits; refused
    // here, before the offsets are cast or added to.
    let side = MAX_GRID_SIDE as f64;
    if !(cx.abs() <= side && cy.abs() <= side) {
        return Err(LatticeError::TooLarge {
            first: first.into(),
            other: other.into(),
            width: cx.abs() + b.width as f64,
            height: cy.abs() + b.height as f64,
        });
    }
    if cx.fract() != 0.0 || cy.fract() != 0.0 {
        return Err(LatticeError::Shifted {
            first: first.into(),
            other: other.into(),
            sx: round3(cx - cx.floor()),
            sy: round3(cy - cy.floor()),
            ox: b.x0,
            oy: b.y0,
            fx: a.x0,
            fy: a.y0,
            res: a.dx,
        });
    }
    Ok([cy as i64, cx as i64])
}

/// The union of `grids` (all on one lattice, named by `names`) and, for each, the
/// `[row, col]` of its cell (0, 0) on that union, all non-negative.
///
/// # Errors
/// The first [`LatticeError`] against `grids[0]`.
pub(crate) fn union(names: &[&str], grids: &[&Grid]) -> Result<(Grid, Vec<[i64; 2]>), LatticeError> {
    let first = grids[0];
    let offsets: Vec<[i64; 2]> =
        grids.iter().zip(names).map(|(g, n)| offset(names[0], first, n, g)).collect::<Result<_, _>>()?;
    // In i128: offsets are within ±MAX_GRID_SIDE, but a grid read from a manifest may claim
    // any size, and nothing here may wrap.
    let r0 = offsets.iter().map(|o| o[0] as i128).min().unwrap_or(0);
    let c0 = offsets.iter().map(|o| o[1] as i128).min().unwrap_or(0);
    let end = |o: i64, n: usize| o as i128 + n as i128;
    let r1 = offsets.iter().zip(grids).map(|(o, g)| end(o[0], g.height)).max().unwrap_or(0);
    let c1 = offsets.iter().zip(grids).map(|(o, g)| end(o[1], g.width)).max().unwrap_or(0);
    let (width, height) = checked_size((c1 - c0) as f64, (r1 - r0) as f64).map_err(|_| LatticeError::TooLarge {
        first: names[0].into(),
        other: names.last().copied().unwrap_or_default().into(),
        width: (c1 - c0) as f64,
        height: (r1 - r0) as f64,
    })?;
    let (r0, c0) = (r0 as i64, c0 as i64);
    // The union's origin is taken from the grid that defines it, not recomputed as
    // x0 + k * dx: its coordinates stay bit-identical to that input's.
    let left = grids[offsets.iter().position(|o| o[1] == c0).unwrap_or(0)];
    let top = grids[offsets.iter().position(|o| o[0] == r0).unwrap_or(0)];
    let grid = Grid {
        crs_wkt: first.crs_wkt.clone(),
        epsg: first.epsg,
        x0: left.x0,
        y0: top.y0,
        dx: first.dx,
        dy: first.dy,
        width,
        height,
    };
    Ok((grid, offsets.iter().map(|o| [o[0] - r0, o[1] - c0]).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(x0: f64, y0: f64, d: f64, w: usize, h: usize) -> Grid {
        Grid { crs_wkt: "EPSG:4326".into(), epsg: Some(4326), x0, y0, dx: d, dy: -d, width: w, height: h }
    }

    #[test]
    fn union_of_different_extents() {
        let a = g(-10.0, 60.0, 0.5, 20, 10); // rows 0..10, cols 0..20
        let b = g(-12.0, 58.0, 0.5, 8, 30); // 4 rows lower, 4 cols left
        let (u, off) = union(&["a", "b"], &[&a, &b]).unwrap();
        assert_eq!((u.x0, u.y0, u.width, u.height), (-12.0, 60.0, 24, 34));
        assert_eq!(off, vec![[0, 4], [4, 0]]);
    }

    #[test]
    fn refusals_show_the_difference() {
        let a = g(-10.0, 60.0, 0.5, 20, 10);
        let e = offset("plants", &a, "vertebrates", &g(-9.88, 59.75, 0.5, 20, 10)).unwrap_err().to_string();
        assert!(e.contains("vertebrates is shifted by (0.24, 0.5) cells from plants"), "{e}");
        assert!(e.contains("--resolution 0.5") && e.contains("--bounds"), "{e}");
        let e = offset("plants", &a, "v", &g(-10.0, 60.0, 0.25, 20, 10)).unwrap_err().to_string();
        assert!(e.contains("v has 0.25 x 0.25 cells, plants has 0.5 x 0.5"), "{e}");
        let mut other = a.clone();
        other.crs_wkt = "EPSG:3857".into();
        other.epsg = Some(3857);
        let e = offset("plants", &a, "v", &other).unwrap_err().to_string();
        assert!(e.contains("another CRS (EPSG:3857) than plants (EPSG:4326)"), "{e}");
    }

    #[test]
    fn unions_beyond_the_limits_are_refused() {
        let a = g(0.0, 0.0, 1.0, 10, 10);
        // 2^40 cells apart on both axes: a 2^40 x 2^40 union.
        let far = g((1u64 << 40) as f64, -((1u64 << 40) as f64), 1.0, 10, 10);
        let e = union(&["a", "far"], &[&a, &far]).unwrap_err().to_string();
        assert!(e.contains("merged grid of a and far") && e.contains(&MAX_GRID_SIDE.to_string()), "{e}");
        // Each side fits, the cells do not: 2^30 apart on both axes.
        let b = g((1u64 << 30) as f64, -((1u64 << 30) as f64), 1.0, 10, 10);
        let e = union(&["a", "b"], &[&a, &b]).unwrap_err().to_string();
        assert!(e.contains(&MAX_GRID_CELLS.to_string()), "{e}");
        // A grid claiming a size beyond every integer does not wrap the union.
        let huge = g(0.0, 0.0, 1.0, usize::MAX, usize::MAX);
        assert!(matches!(union(&["a", "huge"], &[&a, &huge]), Err(LatticeError::TooLarge { .. })));
    }

    #[test]
    fn float_resolutions_snap() {
        let r = 0.016666666666667;
        let a = g(-180.0, 90.0, r, 100, 100);
        let b = g(-180.0 + 37.0 * r, 90.0 - 5.0 * r, r, 100, 100);
        assert_eq!(offset("a", &a, "b", &b).unwrap(), [5, 37]);
    }
}
