//! The preview canvas: which preview pixels a grid cell feeds, and the per-pixel
//! aggregates (average of valid cells, or their mode) built from cells streamed tile by
//! tile. Pure arithmetic over slices: no I/O, no tiles, no colours.

/// How one axis of the grid maps onto one axis of the preview.
///
/// Downsampling (fewer pixels than cells): a cell feeds the one pixel that contains its
/// centre, so every cell counts exactly once. Upsampling (more pixels than cells): a pixel
/// shows the cell that contains the pixel's centre. Both are the cell-centre rule of
/// gdal_translate `-outsize` with nearest/average, without any seam at tile edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisMap {
    cells: u64,
    pixels: u64,
}

impl AxisMap {
    /// `cells` grid cells shown on `pixels` preview pixels (both at least 1; callers check
    /// the limits, so `2 * cells * pixels` fits a u64).
    pub fn new(cells: u64, pixels: u64) -> AxisMap {
        AxisMap { cells: cells.max(1), pixels: pixels.max(1) }
    }

    /// The first pixel whose centre lies at or after the start of cell `c` (upsampling).
    fn first_pixel(&self, c: u64) -> u64 {
        // Smallest p with (2p + 1) * cells >= 2 * c * pixels.
        let num = (2 * c * self.pixels).saturating_sub(self.cells);
        num.div_ceil(2 * self.cells).min(self.pixels)
    }

    /// The pixels `[start, end)` that cell `c` feeds (empty only for a cell outside the axis).
    pub fn pixels_of(&self, c: u64) -> (u64, u64) {
        if c >= self.cells {
            return (0, 0);
        }
        if self.pixels <= self.cells {
            let p = ((2 * c + 1) * self.pixels) / (2 * self.cells);
            (p, p + 1)
        } else {
            (self.first_pixel(c), self.first_pixel(c + 1))
        }
    }

    /// The pixel edge at grid line `c` (0..=cells): where a tile's outline is drawn.
    pub fn edge(&self, c: u64) -> u64 {
        (c.min(self.cells) * self.pixels) / self.cells
    }
}

/// How the cells of one preview pixel are summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Mean of the valid cells (continuous data, counts).
    Average,
    /// Most frequent valid value, ties to the smallest (categorical data, as `convert
    /// --method mode`).
    Mode,
}

impl Aggregate {
    /// Parses `average` or `mode`.
    pub fn parse(s: &str) -> Option<Aggregate> {
        match s.to_ascii_lowercase().as_str() {
            "average" | "mean" => Some(Aggregate::Average),
            "mode" | "majority" => Some(Aggregate::Mode),
            _ => None,
        }
    }

    /// The name, as `--method` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Aggregate::Average => "average",
            Aggregate::Mode => "mode",
        }
    }
}

/// Candidate values kept per pixel for [`Aggregate::Mode`]: the mode is exact for every
/// pixel whose cells hold at most this many distinct values (a preview pixel of categorical
/// data usually does); beyond that the Misra-Gries majority sketch keeps every value that
/// covers more than a fifth of the pixel's cells among the candidates.
pub const MODE_CANDIDATES: usize = 4;

/// Per-pixel aggregates of a `width x height` preview.
#[derive(Debug)]
pub enum Canvas {
    /// Sum and count of valid cells per pixel.
    Average {
        /// Preview width.
        width: usize,
        /// Sum of the valid values per pixel.
        sum: Vec<f64>,
        /// Valid cells per pixel.
        count: Vec<u64>,
    },
    /// [`MODE_CANDIDATES`] (value, count) candidates per pixel; count 0 = free slot.
    Mode {
        /// Preview width.
        width: usize,
        /// Candidate values, `MODE_CANDIDATES` per pixel.
        values: Vec<f64>,
        /// Candidate counts, `MODE_CANDIDATES` per pixel.
        counts: Vec<u32>,
    },
}

impl Canvas {
    /// An empty canvas of `width * height` pixels (the caller checked the pixel limit).
    pub fn new(agg: Aggregate, width: usize, height: usize) -> Canvas {
        let n = width * height;
        match agg {
            Aggregate::Average => Canvas::Average { width, sum: vec![0.0; n], count: vec![0; n] },
            Aggregate::Mode => {
                Canvas::Mode { width, values: vec![0.0; n * MODE_CANDIDATES], counts: vec![0; n * MODE_CANDIDATES] }
            }
        }
    }

    /// Adds valid value `v` to every pixel of rows `ys` and columns `xs`.
    #[inline]
    pub fn add(&mut self, ys: (u64, u64), xs: (u64, u64), v: f64) {
        for y in ys.0 as usize..ys.1 as usize {
            for x in xs.0 as usize..xs.1 as usize {
                match self {
                    Canvas::Average { width, sum, count } => {
                        let i = y * *width + x;
                        sum[i] += v;
                        count[i] += 1;
                    }
                    Canvas::Mode { width, values, counts } => {
                        let i = (y * *width + x) * MODE_CANDIDATES;
                        mode_add(&mut values[i..i + MODE_CANDIDATES], &mut counts[i..i + MODE_CANDIDATES], v);
                    }
                }
            }
        }
    }

    /// The pixel values, row-major, NaN where no valid cell fell.
    pub fn values(&self) -> Vec<f32> {
        match self {
            Canvas::Average { sum, count, .. } => {
                sum.iter().zip(count).map(|(&s, &n)| if n == 0 { f32::NAN } else { (s / n as f64) as f32 }).collect()
            }
            Canvas::Mode { values, counts, .. } => values
                .chunks_exact(MODE_CANDIDATES)
                .zip(counts.chunks_exact(MODE_CANDIDATES))
                .map(|(v, n)| mode_of(v, n).map_or(f32::NAN, |m| m as f32))
                .collect(),
        }
    }
}

/// One step of the Misra-Gries sketch over one pixel's candidate slots.
fn mode_add(values: &mut [f64], counts: &mut [u32], v: f64) {
    if let Some(i) = (0..values.len()).find(|&i| counts[i] > 0 && values[i] == v) {
        counts[i] = counts[i].saturating_add(1);
    } else if let Some(i) = counts.iter().position(|&n| n == 0) {
        values[i] = v;
        counts[i] = 1;
    } else {
        for n in counts.iter_mut() {
            *n -= 1;
        }
    }
}

/// The candidate with the highest count, ties to the smallest value; `None` without one.
fn mode_of(values: &[f64], counts: &[u32]) -> Option<f64> {
    values
        .iter()
        .zip(counts)
        .filter(|(_, &n)| n > 0)
        .min_by(|a, b| b.1.cmp(a.1).then(a.0.total_cmp(b.0)))
        .map(|(&v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_feeds_each_cell_to_the_pixel_of_its_centre() {
        let m = AxisMap::new(10, 4);
        let got: Vec<u64> = (0..10).map(|c| m.pixels_of(c).0).collect();
        // Centres 0.5..9.5 over 2.5 cells per pixel.
        assert_eq!(got, [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]);
        assert!((0..10).all(|c| m.pixels_of(c).1 == m.pixels_of(c).0 + 1));
        assert_eq!(AxisMap::new(5, 5).pixels_of(3), (3, 4));
        assert_eq!(m.pixels_of(10), (0, 0));
    }

    #[test]
    fn upsampling_gives_every_pixel_exactly_one_cell() {
        for (cells, pixels) in [(3u64, 7u64), (2, 1000), (7, 8), (1, 5)] {
            let m = AxisMap::new(cells, pixels);
            let mut next = 0;
            for c in 0..cells {
                let (a, b) = m.pixels_of(c);
                assert_eq!(a, next, "{cells}->{pixels} cell {c}");
                assert!(b > a);
                for p in a..b {
                    // The pixel's centre lies in cell c.
                    let centre = (p as f64 + 0.5) * cells as f64 / pixels as f64;
                    assert_eq!(centre.floor() as u64, c);
                }
                next = b;
            }
            assert_eq!(next, pixels);
        }
    }

    #[test]
    fn edges_span_the_preview() {
        let m = AxisMap::new(300, 100);
        assert_eq!((m.edge(0), m.edge(150), m.edge(300)), (0, 50, 100));
    }

    #[test]
    fn average_and_mode() {
        let mut c = Canvas::new(Aggregate::Average, 2, 1);
        c.add((0, 1), (0, 1), 1.0);
        c.add((0, 1), (0, 1), 2.0);
        let v = c.values();
        assert_eq!(v[0], 1.5);
        assert!(v[1].is_nan());

        let mut c = Canvas::new(Aggregate::Mode, 1, 1);
        for v in [3.0, 1.0, 3.0, 1.0, 2.0] {
            c.add((0, 1), (0, 1), v);
        }
        // 1 and 3 tie: the smallest wins, as convert's mode.
        assert_eq!(c.values()[0], 1.0);
        let mut c = Canvas::new(Aggregate::Mode, 1, 1);
        for v in [7.0, 1.0, 2.0, 3.0, 4.0, 7.0, 7.0, 7.0, 5.0, 7.0] {
            c.add((0, 1), (0, 1), v);
        }
        // More distinct values than candidates: the majority still wins.
        assert_eq!(c.values()[0], 7.0);
    }
}
