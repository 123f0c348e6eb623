//! `sum` and `average`: area-weighted over valid source cells.
//!
//! Each source cell contributes `value * fraction of the source cell inside the output cell`.
//! The fractions of one source cell over all output cells add up to 1, so `sum` conserves
//! the total for any factor, integer or not, down- or up-sampling.

use super::axis::AxisMap;
use super::SourceBlock;
use crate::dtype::Sample;
use std::ops::Range;

/// Area-weighted sum of valid source cells into `out` (row-major, `rows.len() x cols.len()`
/// cells); cells with no valid input get `out_nodata`.
pub fn sum<T: Sample>(
    src: &SourceBlock<T>,
    nodata: Option<T>,
    (rmap, rows): (&AxisMap, Range<usize>),
    (cmap, cols): (&AxisMap, Range<usize>),
    out: &mut [f64],
    out_nodata: f64,
) {
    areal(src, nodata, (rmap, rows), (cmap, cols), out, |s, _| s, out_nodata);
}

/// Area-weighted mean of valid source cells into `out`; cells with no valid input get
/// `out_nodata` (never 0: the original pipeline's bug 5).
pub fn average<T: Sample, O: Sample>(
    src: &SourceBlock<T>,
    nodata: Option<T>,
    (rmap, rows): (&AxisMap, Range<usize>),
    (cmap, cols): (&AxisMap, Range<usize>),
    out: &mut [O],
    out_nodata: O,
) {
    areal(src, nodata, (rmap, rows), (cmap, cols), out, |s, w| O::from_f64(s / w), out_nodata);
}

#[inline]
fn areal<T: Sample, O: Copy>(
    src: &SourceBlock<T>,
    nodata: Option<T>,
    (rmap, rows): (&AxisMap, Range<usize>),
    (cmap, cols): (&AxisMap, Range<usize>),
    out: &mut [O],
    finish: impl Fn(f64, f64) -> O,
    out_nodata: O,
) {
    let ncols = cols.len();
    debug_assert_eq!(out.len(), rows.len() * ncols);
    let mut acc_s = vec![0.0f64; ncols];
    let mut acc_w = vec![0.0f64; ncols];
    // Column spans relative to the block, resolved once for the whole strip.
    let spans: Vec<(usize, &[f64])> = cols
        .clone()
        .map(|c| {
            let (s, w) = cmap.get(c);
            (s.wrapping_sub(src.col0), w)
        })
        .collect();
    for (oi, r) in rows.enumerate() {
        acc_s.fill(0.0);
        acc_w.fill(0.0);
        let (rs, rw) = rmap.get(r);
        for (k, &wy) in rw.iter().enumerate() {
            let line = src.row(rs + k);
            for (j, &(cs, cw)) in spans.iter().enumerate() {
                if cw.is_empty() {
                    continue;
                }
                let mut s = 0.0;
                let mut w = 0.0;
                for (v, &wx) in line[cs..cs + cw.len()].iter().zip(cw) {
                    if v.is_valid(nodata) {
                        s += v.to_f64() * wx;
                        w += wx;
                    }
                }
                acc_s[j] += s * wy;
                acc_w[j] += w * wy;
            }
        }
        let o = &mut out[oi * ncols..(oi + 1) * ncols];
        for j in 0..ncols {
            o[j] = if acc_w[j] > 0.0 { finish(acc_s[j], acc_w[j]) } else { out_nodata };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(data: &[f64], cols: usize) -> SourceBlock<'_, f64> {
        SourceBlock { data, row0: 0, col0: 0, cols }
    }

    #[test]
    fn sum_2x2_by_hand() {
        // 4x4 source of 1..16 into 2x2: each output = sum of a 2x2 block.
        let data: Vec<f64> = (1..=16).map(f64::from).collect();
        let m = AxisMap::areal(0.0, 1.0, 4, 0.0, 2.0, 2);
        let mut out = vec![0.0; 4];
        sum(&block(&data, 4), None, (&m, 0..2), (&m, 0..2), &mut out, f64::NAN);
        assert_eq!(out, vec![14.0, 22.0, 46.0, 54.0]);
    }

    #[test]
    fn sum_conserves_non_integer_and_upsampling() {
        // 0.05 -> 0.03 (factor 5/3) and 0.05 -> 0.02 (upsampling 2.5x).
        let data: Vec<f64> = (0..7 * 9).map(|i| ((i * 37) % 11) as f64).collect();
        let total: f64 = data.iter().sum();
        for res in [0.03f64, 0.02, 0.07] {
            let nx = (9.0 * 0.05 / res).ceil() as usize;
            let ny = (7.0 * 0.05 / res).ceil() as usize;
            let cm = AxisMap::areal(0.0, 0.05, 9, 0.0, res, nx);
            let rm = AxisMap::areal(0.0, -0.05, 7, 0.0, -res, ny);
            let mut out = vec![0.0; nx * ny];
            sum(&block(&data, 9), None, (&rm, 0..ny), (&cm, 0..nx), &mut out, f64::NAN);
            let got: f64 = out.iter().filter(|v| !v.is_nan()).sum();
            assert!((got - total).abs() < 1e-9 * total, "{res}: {got} vs {total}");
        }
    }

    #[test]
    fn sum_by_hand_non_integer() {
        // Source 1x2 cells of width 1 with values 3, 5 onto cells of width 1.5:
        // out0 = 3 + 0.5*5, out1 = 0.5*5.
        let data = [3.0, 5.0];
        let cm = AxisMap::areal(0.0, 1.0, 2, 0.0, 1.5, 2);
        let rm = AxisMap::areal(0.0, 1.0, 1, 0.0, 1.0, 1);
        let mut out = vec![0.0; 2];
        sum(&block(&data, 2), None, (&rm, 0..1), (&cm, 0..2), &mut out, f64::NAN);
        assert_eq!(out, vec![5.5, 2.5]);
    }

    #[test]
    fn average_skips_nodata_and_empty_is_nodata() {
        let data = [1.0, -9.0, 3.0, -9.0, -9.0, -9.0, -9.0, -9.0];
        let cm = AxisMap::areal(0.0, 1.0, 4, 0.0, 2.0, 2);
        let rm = AxisMap::areal(0.0, 1.0, 2, 0.0, 2.0, 1);
        let mut out = vec![0.0f32; 2];
        average(&block(&data, 4), Some(-9.0), (&rm, 0..1), (&cm, 0..2), &mut out, f32::NAN);
        assert_eq!(out[0], 1.0);
        assert_eq!(out[1], 3.0);
        let nan = [f64::NAN; 4];
        let mut out = vec![0.0f32; 1];
        let cm = AxisMap::areal(0.0, 1.0, 2, 0.0, 2.0, 1);
        average(&block(&nan, 2), None, (&rm, 0..1), (&cm, 0..1), &mut out, -1.0);
        assert_eq!(out[0], -1.0);
    }

    #[test]
    fn average_weights_partial_cells() {
        // Values 2 and 8, output cell covers all of cell 0 and half of cell 1.
        let data = [2.0, 8.0];
        let cm = AxisMap::areal(0.0, 1.0, 2, 0.0, 1.5, 2);
        let rm = AxisMap::areal(0.0, 1.0, 1, 0.0, 1.0, 1);
        let mut out = vec![0.0f64; 2];
        average(&block(&data, 2), None, (&rm, 0..1), (&cm, 0..2), &mut out, f64::NAN);
        assert_eq!(out[0], (2.0 + 0.5 * 8.0) / 1.5);
        assert_eq!(out[1], 8.0);
    }
}
