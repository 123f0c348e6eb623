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
pub(crate) fn sum<T: Sample>(
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
pub(crate) fn average<T: Sample, O: Sample>(
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
    if let Some(bytes) = as_bytes(src) {
        // T is u8 here, so the conversion is exact.
        let nd = nodata.map(|v| v.to_f64() as u8);
        if unit_weights(rmap, rows.clone()) && unit_weights(cmap, cols.clone()) {
            return areal_unit_bytes(&bytes, nd, (rmap, rows), (cmap, cols), out, finish, out_nodata);
        }
    }
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

/// The block as Byte cells, when `T` is `u8`.
fn as_bytes<'a, T: Sample>(src: &SourceBlock<'a, T>) -> Option<SourceBlock<'a, u8>> {
    if std::any::TypeId::of::<T>() != std::any::TypeId::of::<u8>() {
        return None;
    }
    // SAFETY: T is u8 (same TypeId), so the slice is a slice of u8.
    let data = unsafe { std::slice::from_raw_parts(src.data.as_ptr().cast::<u8>(), src.data.len()) };
    Some(SourceBlock { data, row0: src.row0, col0: src.col0, cols: src.cols })
}

/// Whether every source cell the output cells `range` touch counts whole (weight exactly 1):
/// an integer, aligned factor such as 30" to 0.05°.
fn unit_weights(map: &AxisMap, range: Range<usize>) -> bool {
    range.into_iter().all(|i| map.get(i).1.iter().all(|&w| w == 1.0))
}

/// Most Byte rows summed into 16-bit column sums before they could overflow (255 * 257 = 65535).
const BYTE_ROWS_PER_FLUSH: usize = 257;

/// [`areal`] for Byte sources with unit weights: source rows are first summed column by column
/// into 16-bit lanes (which vectorise), then each output cell adds its columns. The sums are
/// exact integers, so the result is bit-identical to the weighted path, which also sums exact
/// integers (weights of 1.0) in f64: whichever path a strip takes, no seams.
fn areal_unit_bytes<O: Copy>(
    src: &SourceBlock<u8>,
    nodata: Option<u8>,
    (rmap, rows): (&AxisMap, Range<usize>),
    (cmap, cols): (&AxisMap, Range<usize>),
    out: &mut [O],
    finish: impl Fn(f64, f64) -> O,
    out_nodata: O,
) {
    let ncols = cols.len();
    let span = cmap.source_range(cols.clone());
    let spans: Vec<(usize, usize)> = cols
        .map(|c| {
            let (s, w) = cmap.get(c);
            (if w.is_empty() { 0 } else { s - span.start }, w.len())
        })
        .collect();
    let (c0, width) = (span.start.wrapping_sub(src.col0), span.len());
    let mut col_sum = vec![0u16; width];
    let mut col_n = vec![0u16; width];
    // Per-cell totals across 16-bit flushes; only factors of more than 257 rows need them.
    let mut acc: Vec<(u64, u64)> = Vec::new();
    let span_total = |v: &[u16], cs: usize, len: usize| v[cs..cs + len].iter().map(|&v| u64::from(v)).sum::<u64>();
    for (oi, r) in rows.enumerate() {
        let o = &mut out[oi * ncols..(oi + 1) * ncols];
        let (rs, rw) = rmap.get(r);
        if rw.is_empty() {
            o.fill(out_nodata);
            continue;
        }
        let mut k = 0;
        while k < rw.len() {
            let batch = (rw.len() - k).min(BYTE_ROWS_PER_FLUSH);
            // The first row sets the lanes rather than adding to zeroed ones: at small factors
            // (30" to 1': two rows per output row) clearing them cost as much as the sums.
            add_byte_row::<true>(&src.row(rs + k)[c0..c0 + width], nodata, &mut col_sum, &mut col_n);
            for row in rs + k + 1..rs + k + batch {
                add_byte_row::<false>(&src.row(row)[c0..c0 + width], nodata, &mut col_sum, &mut col_n);
            }
            if batch == rw.len() {
                for (o, &(cs, len)) in o.iter_mut().zip(&spans) {
                    let n = span_total(&col_n, cs, len);
                    *o = if n > 0 { finish(span_total(&col_sum, cs, len) as f64, n as f64) } else { out_nodata };
                }
            } else {
                if k == 0 {
                    acc.clear();
                    acc.resize(ncols, (0, 0));
                }
                for (a, &(cs, len)) in acc.iter_mut().zip(&spans) {
                    a.0 += span_total(&col_sum, cs, len);
                    a.1 += span_total(&col_n, cs, len);
                }
            }
            k += batch;
        }
        if rw.len() > BYTE_ROWS_PER_FLUSH {
            for (o, &(s, n)) in o.iter_mut().zip(&acc) {
                *o = if n > 0 { finish(s as f64, n as f64) } else { out_nodata };
            }
        }
    }
}

/// Adds the valid cells of one row into 16-bit column sums and counts; with `FIRST`, sets
/// them to that row instead (no clearing pass before a strip's first row).
#[inline]
fn add_byte_row<const FIRST: bool>(line: &[u8], nodata: Option<u8>, sum: &mut [u16], n: &mut [u16]) {
    // 256 is no byte: without nodata every cell counts. Branch-free so that the loop
    // vectorises: an invalid cell adds 0 to both.
    let nd = nodata.map_or(256, u16::from);
    for ((&v, s), c) in line.iter().zip(sum.iter_mut()).zip(n.iter_mut()) {
        let ok = u16::from(u16::from(v) != nd);
        let v = u16::from(v) * ok;
        if FIRST {
            (*s, *c) = (v, ok);
        } else {
            *s += v;
            *c += ok;
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
    fn byte_unit_path_matches_weighted_path() {
        // Byte sources on integer factors take the 16-bit column-sum path; the same values as
        // f64 take the weighted path. Both must agree bit for bit, including factors of more
        // than 257 rows (the 16-bit flush) and cells that are all nodata.
        for (rows, cols, fy, fx) in [(12, 18, 3, 6), (600, 4, 300, 2), (7, 7, 1, 1)] {
            let bytes: Vec<u8> = (0..rows * cols).map(|i| ((i * 7919) % 256) as u8).collect();
            let floats: Vec<f64> = bytes.iter().map(|&v| f64::from(v)).collect();
            let (ny, nx) = (rows / fy, cols / fx);
            let rm = AxisMap::areal(0.0, -1.0, rows, 0.0, -(fy as f64), ny);
            let cm = AxisMap::areal(0.0, 1.0, cols, 0.0, fx as f64, nx);
            for nd in [None, Some(0u8), Some(255u8)] {
                let ndf = nd.map(f64::from);
                let b = SourceBlock { data: &bytes[..], row0: 0, col0: 0, cols };
                let f = SourceBlock { data: &floats[..], row0: 0, col0: 0, cols };
                let (mut s1, mut s2) = (vec![0.0; ny * nx], vec![0.0; ny * nx]);
                sum(&b, nd, (&rm, 0..ny), (&cm, 0..nx), &mut s1, f64::NAN);
                sum(&f, ndf, (&rm, 0..ny), (&cm, 0..nx), &mut s2, f64::NAN);
                assert_eq!(format!("{s1:?}"), format!("{s2:?}"));
                let (mut a1, mut a2) = (vec![0.0f32; ny * nx], vec![0.0f32; ny * nx]);
                average(&b, nd, (&rm, 0..ny), (&cm, 0..nx), &mut a1, f32::NAN);
                average(&f, ndf, (&rm, 0..ny), (&cm, 0..nx), &mut a2, f32::NAN);
                assert_eq!(format!("{a1:?}"), format!("{a2:?}"));
            }
        }
        // A Byte block of nodata only.
        let b = SourceBlock { data: &[9u8; 4][..], row0: 0, col0: 0, cols: 2 };
        let m = AxisMap::areal(0.0, 1.0, 2, 0.0, 2.0, 1);
        let mut out = vec![0.0; 1];
        sum(&b, Some(9), (&m, 0..1), (&m, 0..1), &mut out, -1.0);
        assert_eq!(out, vec![-1.0]);
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
