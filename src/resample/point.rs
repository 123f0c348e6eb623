//! `nearest` and `bilinear`: sampled at output cell centres.

use super::axis::PointMap;
use super::SourceBlock;
use crate::dtype::Sample;
use std::ops::Range;

/// The source cell under each output cell centre; off-source or invalid gives `out_nodata`.
pub(crate) fn nearest<T: Sample>(
    src: &SourceBlock<T>,
    nodata: Option<T>,
    (rmap, rows): (&PointMap, Range<usize>),
    (cmap, cols): (&PointMap, Range<usize>),
    out: &mut [T],
    out_nodata: T,
) {
    let ncols = cols.len();
    for (oi, r) in rows.enumerate() {
        let o = &mut out[oi * ncols..(oi + 1) * ncols];
        let Some(sr) = rmap.nearest[r] else {
            o.fill(out_nodata);
            continue;
        };
        let line = src.row(sr as usize);
        for (oj, c) in cols.clone().enumerate() {
            let v = cmap.nearest[c].map(|sc| line[sc as usize - src.col0]);
            o[oj] = v.filter(|v| v.is_valid(nodata)).unwrap_or(out_nodata);
        }
    }
}

/// Bilinear interpolation between the four source centres around each output centre.
/// Invalid neighbours are left out and the weights of the others renormalised, as GDAL does.
pub(crate) fn bilinear<T: Sample, O: Sample>(
    src: &SourceBlock<T>,
    nodata: Option<T>,
    (rmap, rows): (&PointMap, Range<usize>),
    (cmap, cols): (&PointMap, Range<usize>),
    out: &mut [O],
    out_nodata: O,
) {
    let ncols = cols.len();
    for (oi, r) in rows.enumerate() {
        let o = &mut out[oi * ncols..(oi + 1) * ncols];
        let Some((r0, r1, ty)) = rmap.linear[r] else {
            o.fill(out_nodata);
            continue;
        };
        let (l0, l1) = (src.row(r0 as usize), src.row(r1 as usize));
        for (oj, c) in cols.clone().enumerate() {
            let Some((c0, c1, tx)) = cmap.linear[c] else {
                o[oj] = out_nodata;
                continue;
            };
            let (c0, c1) = (c0 as usize - src.col0, c1 as usize - src.col0);
            let mut s = 0.0;
            let mut w = 0.0;
            for (v, wt) in [
                (l0[c0], (1.0 - ty) * (1.0 - tx)),
                (l0[c1], (1.0 - ty) * tx),
                (l1[c0], ty * (1.0 - tx)),
                (l1[c1], ty * tx),
            ] {
                if wt > 0.0 && v.is_valid(nodata) {
                    s += v.to_f64() * wt;
                    w += wt;
                }
            }
            o[oj] = if w > 0.0 { O::from_f64(s / w) } else { out_nodata };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_and_bilinear_by_hand() {
        // 2x2 source [[0, 10], [20, 30]] upsampled to 4x4.
        let data = [0.0f64, 10.0, 20.0, 30.0];
        let src = SourceBlock { data: &data, row0: 0, col0: 0, cols: 2 };
        let m = PointMap::new(0.0, 1.0, 2, 0.0, 0.5, 4);
        let mut out = [0.0f64; 16];
        nearest(&src, None, (&m, 0..4), (&m, 0..4), &mut out, f64::NAN);
        assert_eq!(&out[..4], &[0.0, 0.0, 10.0, 10.0]);
        bilinear(&src, None, (&m, 0..4), (&m, 0..4), &mut out, f64::NAN);
        // Centre of output (1,1) is at 0.75 -> 0.25 of the way from centre 0.5 to 1.5.
        assert_eq!(out[5], 0.25 * 0.75 * 10.0 + 0.25 * 0.75 * 20.0 + 0.0625 * 30.0);
        // Edges clamp to the edge cell.
        assert_eq!(out[0], 0.0);
        assert_eq!(out[15], 30.0);
    }
}
