//! `min` and `max` over the valid source cells that intersect the output cell.

use super::axis::AxisMap;
use super::SourceBlock;
use crate::dtype::Sample;
use std::ops::Range;

/// Which extreme to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extreme {
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
}

/// Min or max of intersecting valid source cells into `out`; cells with no valid input get
/// `out_nodata`.
pub(crate) fn extreme<T: Sample>(
    src: &SourceBlock<T>,
    nodata: Option<T>,
    (rmap, rows): (&AxisMap, Range<usize>),
    (cmap, cols): (&AxisMap, Range<usize>),
    which: Extreme,
    out: &mut [T],
    out_nodata: T,
) {
    let ncols = cols.len();
    for (oi, r) in rows.enumerate() {
        let (rs, rw) = rmap.get(r);
        for (oj, c) in cols.clone().enumerate() {
            let (cs, cw) = cmap.get(c);
            let cs = if cw.is_empty() { 0 } else { cs - src.col0 };
            let mut best: Option<T> = None;
            for k in 0..rw.len() {
                for &v in &src.row(rs + k)[cs..cs + cw.len()] {
                    if v.is_valid(nodata) {
                        best = Some(match best {
                            None => v,
                            Some(b) if (which == Extreme::Min) == (v < b) => v,
                            Some(b) => b,
                        });
                    }
                }
            }
            out[oi * ncols + oj] = best.unwrap_or(out_nodata);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_by_hand() {
        let data = [4.0f32, f32::NAN, 2.0, 9.0];
        let src = SourceBlock { data: &data, row0: 0, col0: 0, cols: 2 };
        let m = AxisMap::areal(0.0, 1.0, 2, 0.0, 2.0, 1);
        let mut out = [0.0f32; 1];
        extreme(&src, None, (&m, 0..1), (&m, 0..1), Extreme::Min, &mut out, f32::NAN);
        assert_eq!(out, [2.0]);
        extreme(&src, None, (&m, 0..1), (&m, 0..1), Extreme::Max, &mut out, f32::NAN);
        assert_eq!(out, [9.0]);
    }
}
