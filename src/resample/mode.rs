//! Kernels that keep one of the source values: `mode`, the value covering the largest area
//! of the output cell (ties go to the smallest), and `min` and `max` over the valid source
//! cells that intersect it.

use super::axis::AxisMap;
use super::SourceBlock;
use crate::dtype::Sample;
use std::ops::Range;

/// Area-weighted mode of valid source cells into `out`; cells with no valid input get
/// `out_nodata`.
pub(crate) fn mode<T: Sample>(
    src: &SourceBlock<T>,
    nodata: Option<T>,
    (rmap, rows): (&AxisMap, Range<usize>),
    (cmap, cols): (&AxisMap, Range<usize>),
    out: &mut [T],
    out_nodata: T,
) {
    let ncols = cols.len();
    // (value, summed area) of each distinct valid value in the cell: categorical rasters have
    // few distinct values per cell, so a linear scan beats sorting every cell's values.
    let mut cells: Vec<(T, f64)> = Vec::new();
    let byte = T::DTYPE == crate::dtype::DataType::Byte;
    let mut hist = vec![0.0f64; if byte { 256 } else { 0 }];
    for (oi, r) in rows.enumerate() {
        let (rs, rw) = rmap.get(r);
        for (oj, c) in cols.clone().enumerate() {
            let (cs, cw) = cmap.get(c);
            let cs = if cw.is_empty() { 0 } else { cs - src.col0 };
            cells.clear();
            for (k, &wy) in rw.iter().enumerate() {
                let line = &src.row(rs + k)[cs..cs + cw.len()];
                for (&v, &wx) in line.iter().zip(cw) {
                    if !v.is_valid(nodata) {
                        continue;
                    }
                    if byte {
                        // 8-bit values index a histogram directly.
                        let h = &mut hist[v.to_f64() as usize];
                        if *h == 0.0 {
                            cells.push((v, 0.0));
                        }
                        *h += wx * wy;
                    } else {
                        match cells.iter_mut().find(|(x, _)| *x == v) {
                            Some(e) => e.1 += wx * wy,
                            None => cells.push((v, wx * wy)),
                        }
                    }
                }
            }
            if byte {
                for e in cells.iter_mut() {
                    let h = &mut hist[e.0.to_f64() as usize];
                    e.1 = *h;
                    *h = 0.0;
                }
            }
            out[oi * ncols + oj] = pick(&cells).unwrap_or(out_nodata);
        }
    }
}

/// The value with the largest summed area, the smallest value on ties.
fn pick<T: Sample>(cells: &[(T, f64)]) -> Option<T> {
    let mut best: Option<(T, f64)> = None;
    for &(v, w) in cells {
        // Equal within rounding noise counts as a tie: areas such as 0.6 * 0.4 + 0.6 * 0.6
        // and 0.6 * 1.0 are equal but not bit-equal.
        let take = best.is_none_or(|(bv, bw)| {
            let eps = 1e-9 * bw.max(w).max(1.0);
            w > bw + eps || ((w - bw).abs() <= eps && v < bv)
        });
        if take {
            best = Some((v, w));
        }
    }
    best.map(|(v, _)| v)
}

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
    fn majority_and_ties() {
        // 2x4 source, two output cells of 2x2: [1,1,2,3] -> 1, [5,4,4,5] -> tie -> 4.
        let data = [1u8, 1, 5, 4, 2, 3, 4, 5];
        let src = SourceBlock { data: &data, row0: 0, col0: 0, cols: 4 };
        let cm = AxisMap::areal(0.0, 1.0, 4, 0.0, 2.0, 2);
        let rm = AxisMap::areal(0.0, 1.0, 2, 0.0, 2.0, 1);
        let mut out = [0u8; 2];
        mode(&src, None, (&rm, 0..1), (&cm, 0..2), &mut out, 255);
        assert_eq!(out, [1, 4]);
    }

    #[test]
    fn area_beats_count() {
        // Output cell covers cell 0 (value 7) fully and cells 1, 2 (value 3) by a quarter
        // each... no: width 1.5 covers cell0 fully (7) and half of cell1 (3): 7 wins.
        let data = [7i16, 3, 3];
        let src = SourceBlock { data: &data, row0: 0, col0: 0, cols: 3 };
        let cm = AxisMap::areal(0.0, 1.0, 3, 0.0, 1.5, 2);
        let rm = AxisMap::areal(0.0, 1.0, 1, 0.0, 1.0, 1);
        let mut out = [0i16; 2];
        mode(&src, Some(-1), (&rm, 0..1), (&cm, 0..2), &mut out, -1);
        assert_eq!(out, [7, 3]);
    }

    #[test]
    fn all_nodata_is_nodata() {
        let data = [9u8; 4];
        let src = SourceBlock { data: &data, row0: 0, col0: 0, cols: 2 };
        let m = AxisMap::areal(0.0, 1.0, 2, 0.0, 2.0, 1);
        let mut out = [0u8; 1];
        mode(&src, Some(9), (&m, 0..1), (&m, 0..1), &mut out, 9);
        assert_eq!(out, [9]);
    }

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
