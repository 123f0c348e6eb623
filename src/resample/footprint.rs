//! `sum` across CRSs: every valid source cell spreads its value over the target cells its
//! footprint covers, each getting the share of the footprint's area that lies inside it.
//!
//! This is GDAL's sum-preserving warp kernel (`GWKSumPreserving`, GDAL >= 3.6) computed
//! from the whole grid instead of one warper chunk: a source cell's footprint is the
//! quadrilateral of its four corners transformed exactly to the whole target grid's pixel
//! coordinates, intersected with each target cell (a unit square) as GDAL does it (convex
//! clipping, a non-convex footprint in two triangles, the footprint's area taken at the
//! first target cell of the grid it overlaps, in row-major order). What a target cell gets
//! depends only on the source cells that overlap it, added in source row-major order, so
//! the output is the same bit for bit whatever the windows and threads. The shares of one
//! source cell over the target cells add up to 1, so totals are conserved (up to rounding)
//! wherever the footprint lies inside the target grid.
//!
//! GDAL 3.6's own warper adds the same terms in the order of its quadtree search, which
//! depends on the chunk, and leaves out source cells beyond a chunk's source window: its
//! output changes with `-wm`; rasterstage's agrees with its single-chunk output to the last
//! bits of the summation order.

use super::SourceBlock;
use crate::dtype::Sample;
use crate::grid::Window;

type Pt = (f64, f64);

/// The corners of a block of source cells in target pixel coordinates (column, row of the
/// whole target grid): `(rows + 1) x (cols + 1)` points row-major, `cols + 1` per row,
/// NaN where a corner does not transform.
#[derive(Debug, Clone, Copy)]
pub struct Corners<'a> {
    /// Target column coordinate of each corner.
    pub x: &'a [f64],
    /// Target row coordinate of each corner.
    pub y: &'a [f64],
}

/// Adds the area-weighted contributions of the valid cells of `src` (`rows` rows) to the
/// target cells of window `w` in `out` (row-major, `w.cells()` values). A cell of `out`
/// that is NaN has had no contribution yet: the caller fills `out` with NaN once and calls
/// this for the source blocks in source row-major order. `grid` is the target grid's
/// `(width, height)`.
pub fn sum<T: Sample>(
    src: &SourceBlock<T>,
    nodata: Option<T>,
    corners: Corners<'_>,
    grid: (usize, usize),
    w: Window,
    out: &mut [f64],
) {
    let cols = src.cols;
    if cols == 0 {
        return;
    }
    let rows = src.data.len() / cols;
    debug_assert_eq!(corners.x.len(), (rows + 1) * (cols + 1));
    debug_assert_eq!(out.len(), w.cells());
    let stride = cols + 1;
    let corner = |r: usize, c: usize| (corners.x[r * stride + c], corners.y[r * stride + c]);
    let mut scratch = Scratch::default();
    for r in 0..rows {
        for c in 0..cols {
            let v = src.data[r * cols + c];
            if !v.is_valid(nodata) {
                continue;
            }
            // Top-left, top-right, bottom-right, bottom-left, as GDAL orders them.
            let quad = [corner(r, c), corner(r, c + 1), corner(r + 1, c + 1), corner(r + 1, c)];
            spread(v.to_f64(), &quad, grid, w, out, &mut scratch);
        }
    }
}

/// Buffers reused from cell to cell.
#[derive(Default)]
struct Scratch {
    inter: Vec<Pt>,
    keyed: Vec<(u8, f64, f64, f64)>,
}

const UNIT: [Pt; 5] = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.0, 0.0)];

/// Spreads `v` over the target cells its footprint `quad` overlaps, adding to those in `w`.
fn spread(v: f64, quad: &[Pt; 4], (gw, gh): (usize, usize), w: Window, out: &mut [f64], s: &mut Scratch) {
    if quad.iter().any(|p| !(p.0.is_finite() && p.1.is_finite())) {
        return;
    }
    let (minx, miny, maxx, maxy) = bbox(*quad);
    if !(minx < gw as f64 && maxx > 0.0 && miny < gh as f64 && maxy > 0.0) {
        return;
    }
    // A footprint whose opposite edges cross (folded by the transformation) has no area
    // GDAL trusts: it skips the cell.
    if intersection(quad[0], quad[1], quad[2], quad[3]).is_some()
        || intersection(quad[1], quad[2], quad[0], quad[3]).is_some()
    {
        return;
    }
    // Within the grid (checked above), so the casts are in range.
    let span = |lo: f64, hi: f64, n: usize| (lo.floor().max(0.0) as usize, hi.ceil().min(n as f64) as usize);
    let (c0, c1) = span(minx, maxx, gw);
    let (r0, r1) = span(miny, maxy, gh);
    let (wr1, wc1) = (w.row0 + w.rows, w.col0 + w.cols);
    // The footprint's area as GDAL takes it: at the first cell of the grid it overlaps.
    let mut area = 0.0;
    for r in r0..r1 {
        if area != 0.0 && r >= wr1 {
            break;
        }
        let in_rows = r >= w.row0 && r < wr1;
        if area != 0.0 && !in_rows {
            continue;
        }
        let (cs, ce) = if area != 0.0 { (c0.max(w.col0), c1.min(wc1)) } else { (c0, c1) };
        for c in cs..ce {
            let shifted = shift(quad, c as f64, r as f64);
            let inter = overlap(&shifted, s);
            if inter <= 0.0 {
                continue;
            }
            if area == 0.0 {
                area = ring_area(&shifted);
            }
            if in_rows && c >= w.col0 && c < wc1 {
                let o = &mut out[(r - w.row0) * w.cols + (c - w.col0)];
                if o.is_nan() {
                    *o = 0.0;
                }
                *o += v * (inter / area);
            }
        }
    }
}

/// The bounding box `(min x, min y, max x, max y)` of `points` (NaN coordinates left out).
pub(crate) fn bbox(points: impl IntoIterator<Item = Pt>) -> (f64, f64, f64, f64) {
    let mut b = (f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
    for (x, y) in points {
        b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
    }
    b
}

/// The footprint in the coordinates of the target cell whose corner is `(cx, cy)`, closed.
fn shift(q: &[Pt; 4], cx: f64, cy: f64) -> [Pt; 5] {
    let p = |i: usize| (q[i].0 - cx, q[i].1 - cy);
    [p(0), p(1), p(2), p(3), p(0)]
}

/// The area of the unit square covered by the closed quadrilateral `q`.
fn overlap(q: &[Pt; 5], s: &mut Scratch) -> f64 {
    let part = |poly: &[Pt], s: &mut Scratch| {
        convex_intersection(&UNIT, poly, s);
        if s.inter.len() >= 3 {
            ring_area(&s.inter)
        } else {
            0.0
        }
    };
    if is_convex(q) {
        part(q, s)
    } else {
        part(&[q[0], q[1], q[2], q[0]], s) + part(&[q[0], q[2], q[3], q[0]], s)
    }
}

/// 1 when (p1, p2, p3) turn clockwise, -1 counter-clockwise, 0 when (nearly) colinear.
fn orientation(p1: Pt, p2: Pt, p3: Pt) -> i32 {
    let v = (p2.1 - p1.1) * (p3.0 - p2.0) - (p2.0 - p1.0) * (p3.1 - p2.1);
    if v.abs() < 1e-20 {
        0
    } else if v > 0.0 {
        1
    } else {
        -1
    }
}

/// Whether the closed polygon `poly` is convex.
fn is_convex(poly: &[Pt]) -> bool {
    let n = poly.len();
    let mut last = orientation(poly[0], poly[1], poly[2]);
    for i in 1..n - 2 {
        let o = orientation(poly[i], poly[i + 1], poly[i + 2]);
        if o != 0 {
            if last == 0 {
                last = o;
            } else if o != last {
                return false;
            }
        }
    }
    true
}

/// Whether `p` lies in the closed convex polygon `poly` (on its boundary counts).
fn in_convex(p: Pt, poly: &[Pt]) -> bool {
    let cross = |a: Pt, b: Pt| {
        let (dx1, dy1) = (p.0 - a.0, p.1 - a.1);
        let (dx2, dy2) = (b.0 - a.0, b.1 - a.1);
        dx1 * dy2 - dx2 * dy1
    };
    let mut prev = cross(poly[0], poly[1]);
    for i in 2..poly.len() {
        let cp = cross(poly[i - 1], poly[i]);
        if prev.abs() < 1e-20 {
            prev = cp;
        } else if prev * cp < 0.0 {
            return false;
        }
    }
    true
}

/// The single point where segments [p1, p2] and [p3, p4] meet, if they are not colinear.
fn intersection(p1: Pt, p2: Pt, p3: Pt, p4: Pt) -> Option<Pt> {
    let (x1, y1, x2, y2, x3, y3, x4, y4) = (p1.0, p1.1, p2.0, p2.1, p3.0, p3.1, p4.0, p4.1);
    let t_num = (x1 - x3) * (y3 - y4) - (y1 - y3) * (x3 - x4);
    let denom = (x1 - x2) * (y3 - y4) - (y1 - y2) * (x3 - x4);
    if t_num * denom < 0.0 || t_num.abs() > denom.abs() || denom == 0.0 {
        return None;
    }
    let u_num = (x1 - x3) * (y1 - y2) - (y1 - y3) * (x1 - x2);
    if u_num * denom < 0.0 || u_num.abs() > denom.abs() {
        return None;
    }
    let t = t_num / denom;
    Some((x1 + t * (x2 - x1), y1 + t * (y2 - y1)))
}

/// The intersection of two closed convex polygons into `s.inter`, its vertices in angular
/// order from the lowest one, not closed.
fn convex_intersection(a: &[Pt], b: &[Pt], s: &mut Scratch) {
    let out = &mut s.inter;
    out.clear();
    out.extend(a[..a.len() - 1].iter().copied().filter(|&p| in_convex(p, b)));
    if out.len() == a.len() - 1 {
        return;
    }
    out.extend(b[..b.len() - 1].iter().copied().filter(|&p| in_convex(p, a)));
    for i in 0..a.len() - 1 {
        for j in 0..b.len() - 1 {
            if let Some(p) = intersection(a[i], a[i + 1], b[j], b[j + 1]) {
                out.push(p);
            }
        }
    }
    if out.is_empty() {
        return;
    }
    let (mut lx, mut ly) = (f64::MAX, f64::MAX);
    for &(x, y) in out.iter() {
        if y < ly || (y == ly && x < lx) {
            (lx, ly) = (x, y);
        }
    }
    // GDAL sorts by the tangent of the angle from the lowest point (angles up to 90 degrees,
    // then the obtuse ones); a sort key rather than its comparator, so that the order is a
    // total one whatever rounding does (points at equal angles go by x, then y).
    s.keyed.clear();
    s.keyed.extend(out.iter().map(|&(x, y)| {
        let (dx, dy) = (x - lx, y - ly);
        let tan = match (dx == 0.0, dy == 0.0) {
            (false, _) => dy / dx,
            (true, true) => 0.0,
            (true, false) => f64::MAX,
        };
        (u8::from(tan < 0.0), tan, x, y)
    }));
    s.keyed.sort_by(|p, q| p.0.cmp(&q.0).then(p.1.total_cmp(&q.1)).then(p.2.total_cmp(&q.2)).then(p.3.total_cmp(&q.3)));
    out.clear();
    for &(_, _, x, y) in &s.keyed {
        if out.last() != Some(&(x, y)) {
            out.push((x, y));
        }
    }
}

/// The area of a ring (closed or not) by the shoelace formula, as GDAL computes it.
fn ring_area(p: &[Pt]) -> f64 {
    let n = p.len();
    let mut sum = p[0].0 * (p[1].1 - p[n - 1].1);
    for i in 1..n - 1 {
        sum += p[i].0 * (p[i + 1].1 - p[i - 1].1);
    }
    sum += p[n - 1].0 * (p[0].1 - p[n - 2].1);
    0.5 * sum.abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Corners of a `rows x cols` block under an affine map from source to target pixels.
    fn affine(rows: usize, cols: usize, f: impl Fn(f64, f64) -> Pt) -> (Vec<f64>, Vec<f64>) {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for r in 0..=rows {
            for c in 0..=cols {
                let p = f(c as f64, r as f64);
                x.push(p.0);
                y.push(p.1);
            }
        }
        (x, y)
    }

    fn run(data: &[f64], cols: usize, xy: &(Vec<f64>, Vec<f64>), grid: (usize, usize), w: Window) -> Vec<f64> {
        let block = SourceBlock { data, row0: 0, col0: 0, cols };
        let mut out = vec![f64::NAN; w.cells()];
        sum(&block, Some(-1.0), Corners { x: &xy.0, y: &xy.1 }, grid, w, &mut out);
        out
    }

    fn whole(width: usize, height: usize) -> Window {
        Window { row0: 0, col0: 0, rows: height, cols: width }
    }

    #[test]
    fn rotated_footprints_conserve_the_total_and_do_not_depend_on_the_window() {
        // A 9 x 7 block rotated by 20 degrees and scaled by 0.7 onto a 12 x 12 grid.
        let (sin, cos) = 20f64.to_radians().sin_cos();
        let xy = affine(7, 9, |c, r| (2.5 + 0.7 * (c * cos - r * sin), 4.0 + 0.7 * (c * sin + r * cos)));
        let data: Vec<f64> = (0..63).map(|i| if i == 30 { -1.0 } else { (i % 11) as f64 + 0.25 }).collect();
        let all = run(&data, 9, &xy, (12, 12), whole(12, 12));
        let total: f64 = data.iter().filter(|&&v| v != -1.0).sum();
        let got: f64 = all.iter().filter(|v| !v.is_nan()).sum();
        assert!((got - total).abs() < 1e-9 * total, "{got} vs {total}");
        // Every 5 x 4 window gives the same cells, bit for bit.
        for row0 in (0..12).step_by(4) {
            for col0 in (0..12).step_by(5) {
                let w = Window { row0, col0, rows: 4.min(12 - row0), cols: 5.min(12 - col0) };
                let part = run(&data, 9, &xy, (12, 12), w);
                for r in 0..w.rows {
                    for c in 0..w.cols {
                        let (a, b) = (part[r * w.cols + c], all[(row0 + r) * 12 + col0 + c]);
                        assert!(a.to_bits() == b.to_bits(), "({}, {}): {a} vs {b}", row0 + r, col0 + c);
                    }
                }
            }
        }
    }

    #[test]
    fn aligned_halving_sums_blocks_and_nodata_stays_out() {
        // 4 x 4 cells onto a 2 x 2 grid: each target cell sums a 2 x 2 block.
        let xy = affine(4, 4, |c, r| (c / 2.0, r / 2.0));
        let mut data: Vec<f64> = (0..16).map(|i| i as f64).collect();
        data[0] = -1.0;
        let out = run(&data, 4, &xy, (2, 2), whole(2, 2));
        assert_eq!(
            out,
            vec![1.0 + 4.0 + 5.0, 2.0 + 3.0 + 6.0 + 7.0, 8.0 + 9.0 + 12.0 + 13.0, 10.0 + 11.0 + 14.0 + 15.0]
        );
        // Only nodata over a cell: it stays NaN.
        let out = run(&[-1.0; 4], 2, &affine(2, 2, |c, r| (c, r)), (2, 2), whole(2, 2));
        assert!(out.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn untransformable_folded_and_outside_footprints_add_nothing() {
        let mut xy = affine(1, 3, |c, r| (c, r));
        xy.0[1] = f64::NAN; // a corner of cells 0 and 1
        let out = run(&[1.0, 2.0, 4.0], 3, &xy, (3, 1), whole(3, 1));
        assert!(out[0].is_nan() && out[1].is_nan());
        assert_eq!(out[2], 4.0);
        // A bow tie: the top edge (0,0)-(1,1) crosses the bottom one (1,0)-(0,1).
        let bow = (vec![0.0, 1.0, 0.0, 1.0], vec![0.0, 1.0, 1.0, 0.0]);
        assert!(run(&[5.0], 1, &bow, (1, 1), whole(1, 1))[0].is_nan());
        // Entirely off the grid.
        assert!(run(&[5.0], 1, &affine(1, 1, |c, r| (c + 7.0, r)), (2, 2), whole(2, 2)).iter().all(|v| v.is_nan()));
    }

    #[test]
    fn ring_area_of_unit_square_and_triangle() {
        assert_eq!(ring_area(&UNIT), 1.0);
        assert_eq!(ring_area(&[(0.0, 0.0), (2.0, 0.0), (0.0, 1.0)]), 1.0);
    }
}
