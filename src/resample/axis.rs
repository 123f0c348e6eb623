//! How output cells map onto source cells along one axis.
//!
//! Grids are north-up and share a CRS, so a 2-D overlap is the product of two 1-D overlaps.
//! Positions are computed in source-cell units and snapped to whole cells when within
//! [`crate::grid::SNAP_CELLS`], so that an aligned integer factor gives weights of exactly 1.0
//! and not 0.9999999 plus a 1e-12 sliver of the neighbour.

use crate::grid::snap;
use std::ops::Range;

/// For each output cell: the source cells it overlaps and the fraction of each source cell
/// that lies inside it.
#[derive(Debug, Clone, Default)]
pub(crate) struct AxisMap {
    /// `spans[i]` = (first source index, number of source cells, offset into `weights`).
    spans: Vec<(u32, u32, u32)>,
    weights: Vec<f64>,
}

/// One output cell's sampling point on an axis: source cells `lo` and `hi` (equal at the
/// edges) and the interpolation weight `t` of `hi`. `None` when the centre is off the source.
pub(crate) type Point = Option<(u32, u32, f64)>;

impl AxisMap {
    /// Builds the map for output cells `0..dst_n` whose edges are `dst_origin + i * dst_step`,
    /// over source cells `0..src_n` whose edges are `src_origin + j * src_step`. The steps
    /// must have the same sign (both negative for the y axis of north-up grids).
    pub(crate) fn areal(
        src_origin: f64,
        src_step: f64,
        src_n: usize,
        dst_origin: f64,
        dst_step: f64,
        dst_n: usize,
    ) -> AxisMap {
        let mut map = AxisMap { spans: Vec::with_capacity(dst_n), weights: Vec::new() };
        let to_src = |i: usize| snap((dst_origin + i as f64 * dst_step - src_origin) / src_step);
        let n = src_n as f64;
        let mut ua = to_src(0);
        for i in 0..dst_n {
            let ub = to_src(i + 1);
            let (a, b) = (ua.clamp(0.0, n), ub.clamp(0.0, n));
            let off = map.weights.len() as u32;
            let first = a.floor() as usize;
            let mut count = 0u32;
            let mut start = first as u32;
            if b > a {
                let last = (b.ceil() as usize).min(src_n);
                for j in first..last {
                    let w = b.min(j as f64 + 1.0) - a.max(j as f64);
                    if w > 0.0 {
                        if count == 0 {
                            start = j as u32;
                        }
                        map.weights.push(w);
                        count += 1;
                    }
                }
            }
            map.spans.push((start, count, off));
            ua = ub;
        }
        map
    }

    /// Number of output cells.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    /// Source cells of output cell `i`: first index and weights (one per source cell).
    #[inline]
    pub(crate) fn get(&self, i: usize) -> (usize, &[f64]) {
        let (s, n, o) = self.spans[i];
        (s as usize, &self.weights[o as usize..(o + n) as usize])
    }

    /// The source range `[start, end)` that output cells `range` need (empty range if none).
    pub(crate) fn source_range(&self, range: Range<usize>) -> Range<usize> {
        hull(range.map(|i| self.get(i)).filter(|(_, w)| !w.is_empty()).map(|(s, w)| s..s + w.len()))
    }
}

/// Sampling points of output cell centres on the source axis, for nearest and bilinear.
#[derive(Debug, Clone, Default)]
pub(crate) struct PointMap {
    /// Nearest source cell of each output centre.
    pub(crate) nearest: Vec<Option<u32>>,
    /// Bilinear neighbours of each output centre.
    pub(crate) linear: Vec<Point>,
}

impl PointMap {
    /// Builds the points for output cells `0..dst_n` (see [`AxisMap::areal`] for the axes).
    pub(crate) fn new(
        src_origin: f64,
        src_step: f64,
        src_n: usize,
        dst_origin: f64,
        dst_step: f64,
        dst_n: usize,
    ) -> PointMap {
        let mut nearest = Vec::with_capacity(dst_n);
        let mut linear = Vec::with_capacity(dst_n);
        let n = src_n as f64;
        for i in 0..dst_n {
            let u = snap((dst_origin + (i as f64 + 0.5) * dst_step - src_origin) / src_step);
            if !(0.0..n).contains(&u) {
                nearest.push(None);
                linear.push(None);
                continue;
            }
            nearest.push(Some(u.floor() as u32));
            // Between the centres of cells floor(u - 0.5) and the next one.
            let c = u - 0.5;
            let lo = c.floor();
            let t = c - lo;
            let lo_i = lo.max(0.0) as u32;
            let hi_i = ((lo + 1.0).min(n - 1.0)).max(0.0) as u32;
            linear.push(Some((lo_i, hi_i, if lo < 0.0 { 1.0 } else { t })));
        }
        PointMap { nearest, linear }
    }

    /// The source range that output cells `range` need, with the bilinear neighbours.
    pub(crate) fn source_range(&self, range: Range<usize>, bilinear: bool) -> Range<usize> {
        hull(range.filter_map(|i| match bilinear {
            true => self.linear[i].map(|(a, b, _)| a as usize..b as usize + 1),
            false => self.nearest[i].map(|a| a as usize..a as usize + 1),
        }))
    }
}

/// The smallest range holding every one of `ranges` (`0..0` when there are none).
fn hull(ranges: impl Iterator<Item = Range<usize>>) -> Range<usize> {
    ranges.reduce(|a, b| a.start.min(b.start)..a.end.max(b.end)).unwrap_or(0..0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_factor_weights_are_exact() {
        let m = AxisMap::areal(-180.0, 1.0 / 120.0, 43200, -180.0, 0.05, 7200);
        for i in [0, 1, 3599, 7199] {
            let (s, w) = m.get(i);
            assert_eq!(s, i * 6);
            assert_eq!(w, &[1.0; 6]);
        }
    }

    #[test]
    fn non_integer_factor_splits_cells() {
        // 0.05 -> 0.03: output cell 0 = [0, 0.6) source cells, cell 1 = [0.6, 1.2).
        let m = AxisMap::areal(0.0, 0.05, 10, 0.0, 0.03, 17);
        let (s, w) = m.get(0);
        assert_eq!(s, 0);
        assert!((w[0] - 0.6).abs() < 1e-12);
        let (s, w) = m.get(1);
        assert_eq!(s, 0);
        assert!((w[0] - 0.4).abs() < 1e-12 && (w[1] - 0.2).abs() < 1e-12);
        // Every source cell is fully distributed.
        let mut per_src = [0.0; 10];
        for i in 0..m.len() {
            let (s, w) = m.get(i);
            for (k, x) in w.iter().enumerate() {
                per_src[s + k] += x;
            }
        }
        for x in per_src {
            assert!((x - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn negative_steps_for_y() {
        let m = AxisMap::areal(90.0, -0.5, 360, 90.0, -1.0, 180);
        assert_eq!(m.get(1), (2, &[1.0, 1.0][..]));
        assert_eq!(m.source_range(0..2), 0..4);
    }

    #[test]
    fn points() {
        let p = PointMap::new(0.0, 1.0, 4, 0.0, 2.0, 2);
        assert_eq!(p.nearest, vec![Some(1), Some(3)]);
        // Centre 1.0 lies on the edge between cells 0 and 1: halfway between their centres.
        assert_eq!(p.linear[0], Some((0, 1, 0.5)));
    }
}
